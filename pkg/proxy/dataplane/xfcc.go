package dataplane

import (
	"fmt"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// XFCCMode is the connection manager's forward_client_cert_details.
type XFCCMode uint8

// The modes, as Envoy's ForwardClientCertType.
const (
	XFCCSanitize XFCCMode = iota
	XFCCForwardOnly
	XFCCAppendForward
	XFCCSanitizeSet
	XFCCAlwaysForwardOnly
)

// XFCCDetail is one field of set_current_client_cert_details.
type XFCCDetail uint8

// The details, in the order Envoy's connection manager config lists them
// (http_connection_manager/config.cc): Cert, Chain, Subject, URI, DNS.
const (
	XFCCCert XFCCDetail = iota
	XFCCChain
	XFCCSubject
	XFCCURI
	XFCCDNS
)

// XFCC is a compiled forward_client_cert_details with its
// set_current_client_cert_details; the connection manager applies it to
// every request (httpproxy/xfcc.go) as Envoy's
// ConnectionManagerUtility::mutateXfccRequestHeader does.
type XFCC struct {
	Mode    XFCCMode
	Details []XFCCDetail
}

var xfccModes = map[hcm.HttpConnectionManager_ForwardClientCertDetails]XFCCMode{
	hcm.HttpConnectionManager_SANITIZE:            XFCCSanitize,
	hcm.HttpConnectionManager_FORWARD_ONLY:        XFCCForwardOnly,
	hcm.HttpConnectionManager_APPEND_FORWARD:      XFCCAppendForward,
	hcm.HttpConnectionManager_SANITIZE_SET:        XFCCSanitizeSet,
	hcm.HttpConnectionManager_ALWAYS_FORWARD_ONLY: XFCCAlwaysForwardOnly,
}

func compileXFCC(m *hcm.HttpConnectionManager) (*XFCC, error) {
	mode, ok := xfccModes[m.ForwardClientCertDetails]
	if !ok {
		return nil, fmt.Errorf("forward_client_cert_details %v: not supported", m.ForwardClientCertDetails)
	}
	x := &XFCC{Mode: mode}
	d := m.GetSetCurrentClientCertDetails()
	if d == nil {
		return x, nil
	}
	if d.Issuer || d.Format != hcm.HttpConnectionManager_TEXT {
		return nil, fmt.Errorf("set_current_client_cert_details: issuer, format: not supported")
	}
	for _, f := range []struct {
		on bool
		d  XFCCDetail
	}{{d.Cert, XFCCCert}, {d.Chain, XFCCChain}, {d.GetSubject().GetValue(), XFCCSubject}, {d.Uri, XFCCURI}, {d.Dns, XFCCDNS}} {
		if f.on {
			x.Details = append(x.Details, f.d)
		}
	}
	return x, nil
}
