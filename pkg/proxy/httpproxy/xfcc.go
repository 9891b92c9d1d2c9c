package httpproxy

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
)

// xfccHeader is x-forwarded-client-cert in net/http's canonical form.
const xfccHeader = "X-Forwarded-Client-Cert"

// xfccCache is a connection's own XFCC element for the chain config it
// was made for: computed once per connection (and again only if a push
// changes the chain's config while the connection is open).
type xfccCache struct {
	cur atomic.Pointer[xfccEntry]
}

type xfccEntry struct {
	cfg  *dataplane.XFCC
	elem string
}

// element is the connection's XFCC element for cfg.
func (ci *ConnInfo) element(cfg *dataplane.XFCC) string {
	if e := ci.xfcc.cur.Load(); e != nil && e.cfg == cfg {
		return e.elem
	}
	e := &xfccEntry{cfg: cfg, elem: xfccElement(ci, cfg)}
	ci.xfcc.cur.Store(e)
	return e.elem
}

// PrepareXFCC computes the connection's XFCC element for its chain at
// accept time, so no request has to.
func (ci *ConnInfo) PrepareXFCC() {
	if ci.Chain == nil || ci.Chain.XFCC == nil || !ci.MTLS() {
		return
	}
	if m := ci.Chain.XFCC.Mode; m == dataplane.XFCCAppendForward || m == dataplane.XFCCSanitizeSet {
		ci.element(ci.Chain.XFCC)
	}
}

// applyXFCC edits a request's x-forwarded-client-cert as Envoy's
// ConnectionManagerUtility::mutateXfccRequestHeader does: ALWAYS_FORWARD_ONLY
// leaves it; SANITIZE, or any mode on a connection without a verified
// client certificate, removes it; FORWARD_ONLY leaves it; APPEND_FORWARD
// appends this connection's element (",") and SANITIZE_SET replaces the
// header with it.
func applyXFCC(r *http.Request, ci *ConnInfo, cfg *dataplane.XFCC) {
	if cfg == nil || cfg.Mode == dataplane.XFCCAlwaysForwardOnly {
		return
	}
	if cfg.Mode == dataplane.XFCCSanitize || !ci.MTLS() {
		delete(r.Header, xfccHeader)
		return
	}
	if cfg.Mode == dataplane.XFCCForwardOnly {
		return
	}
	elem := ci.element(cfg)
	if old := r.Header[xfccHeader]; cfg.Mode == dataplane.XFCCAppendForward && len(old) > 0 {
		r.Header[xfccHeader] = []string{strings.Join(old, ",") + "," + elem}
		return
	}
	r.Header[xfccHeader] = []string{elem}
}

// xfccElement is the connection's element: By= (each URI SAN of the
// proxy's own certificate), Hash= (hex SHA-256 of the peer certificate),
// then the set_current_client_cert_details in Envoy's order: Cert="",
// Chain="" (URL-encoded PEM), Subject="" (always present), URI= (each, or
// empty), DNS= (each).
func xfccElement(ci *ConnInfo, cfg *dataplane.XFCC) string {
	state := ci.Conn.TLS
	peer := state.PeerCertificates[0]
	var parts []string
	if ci.Local != nil {
		for _, u := range ci.Local.URIs {
			parts = append(parts, "By="+u.String())
		}
	}
	sum := sha256.Sum256(peer.Raw)
	parts = append(parts, "Hash="+hex.EncodeToString(sum[:]))
	for _, d := range cfg.Details {
		switch d {
		case dataplane.XFCCCert:
			parts = append(parts, `Cert="`+urlEncodedPEM(peer)+`"`)
		case dataplane.XFCCChain:
			parts = append(parts, `Chain="`+urlEncodedPEM(state.PeerCertificates...)+`"`)
		case dataplane.XFCCSubject:
			parts = append(parts, `Subject="`+peer.Subject.String()+`"`)
		case dataplane.XFCCURI:
			if len(peer.URIs) == 0 {
				parts = append(parts, "URI=")
			}
			for _, u := range peer.URIs {
				parts = append(parts, "URI="+u.String())
			}
		case dataplane.XFCCDNS:
			for _, n := range peer.DNSNames {
				parts = append(parts, "DNS="+n)
			}
		}
	}
	return strings.Join(parts, ";")
}

// pemEscaper is Envoy's URL encoding of a PEM certificate in XFCC
// (ssl ConnectionInfoImpl::urlEncodedPemEncodedPeerCertificate).
var pemEscaper = strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D")

func urlEncodedPEM(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return pemEscaper.Replace(b.String())
}
