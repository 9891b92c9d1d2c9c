package xdsgen

import (
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// xfccRole says which of Istio's x-forwarded-client-cert settings a
// connection manager gets.
type xfccRole int

const (
	// The zero role leaves Envoy's default (SANITIZE): outbound listeners.
	_ xfccRole = iota
	// xfccSidecarInbound is Istio's sidecar inbound connection manager
	// (buildSidecarInboundHTTPOpts, pilot/pkg/networking/core/
	// listener_inbound.go): APPEND_FORWARD, unless meshConfig
	// defaultConfig.proxyHeaders.forwardedClientCert says otherwise
	// (util.GetProxyHeaders), with the peer's subject, URI and DNS SANs.
	xfccSidecarInbound
	// xfccGateway is Istio's gateway connection manager
	// (buildGatewayHTTPConnectionManager, pilot/pkg/networking/core/
	// gateway.go): SANITIZE_SET unless defaultConfig.gatewayTopology.
	// forwardClientCertDetails says otherwise, with subject, certificate,
	// URI and DNS SANs when the mode sets the header.
	xfccGateway
)

// applyXFCC sets forward_client_cert_details and
// set_current_client_cert_details on an HTTP connection manager.
func applyXFCC(m *hcm.HttpConnectionManager, role xfccRole, mc *meshv1alpha1.MeshConfig) {
	switch role {
	case xfccSidecarInbound:
		m.ForwardClientCertDetails = hcm.HttpConnectionManager_APPEND_FORWARD
		if f := mc.GetDefaultConfig().GetProxyHeaders().GetForwardedClientCert(); f != meshv1alpha1.ForwardClientCertDetails_UNDEFINED {
			m.ForwardClientCertDetails = envoyXFCC(f)
		}
		// Istio sets these whatever the mode.
		m.SetCurrentClientCertDetails = &hcm.HttpConnectionManager_SetCurrentClientCertDetails{
			Subject: wrapBool(true), Uri: true, Dns: true,
		}
	case xfccGateway:
		m.ForwardClientCertDetails = hcm.HttpConnectionManager_SANITIZE_SET
		if f := mc.GetDefaultConfig().GetGatewayTopology().GetForwardClientCertDetails(); f != meshv1alpha1.ForwardClientCertDetails_UNDEFINED {
			m.ForwardClientCertDetails = envoyXFCC(f)
		}
		if m.ForwardClientCertDetails == hcm.HttpConnectionManager_APPEND_FORWARD ||
			m.ForwardClientCertDetails == hcm.HttpConnectionManager_SANITIZE_SET {
			m.SetCurrentClientCertDetails = &hcm.HttpConnectionManager_SetCurrentClientCertDetails{
				Subject: wrapBool(true), Cert: true, Uri: true, Dns: true,
			}
		}
	}
}

// envoyXFCC is Istio's util.MeshConfigToEnvoyForwardClientCertDetails: the
// MeshConfig enum is Envoy's shifted by UNDEFINED.
func envoyXFCC(f meshv1alpha1.ForwardClientCertDetails) hcm.HttpConnectionManager_ForwardClientCertDetails {
	return hcm.HttpConnectionManager_ForwardClientCertDetails(f - 1)
}
