package xdsgen_test

import (
	"slices"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/pkg/model"
	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

var router = model.Proxy{Type: model.Router, Name: "ingress", Namespace: "istio-system",
	Labels: map[string]string{"istio": "ingressgateway"}, IPs: []string{"127.0.0.1"}}

func serverContext(t *testing.T, res *xdsgen.Resources) *tlsv3.DownstreamTlsContext {
	t.Helper()
	if len(res.Conflicts) > 0 {
		t.Fatalf("conflicts: %v", res.Conflicts)
	}
	for _, l := range res.Listeners {
		for _, fc := range l.FilterChains {
			if ts := fc.GetTransportSocket(); ts != nil {
				var ctx tlsv3.DownstreamTlsContext
				if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
					t.Fatal(err)
				}
				return &ctx
			}
		}
	}
	t.Fatal("no TLS filter chain")
	return nil
}

const gatewayTLSBase = `apiVersion: v1
kind: Secret
metadata: {name: cred, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY, ca.crt: CA, ca.crl: CRL}
---
apiVersion: v1
kind: Secret
metadata: {name: cred-ecdsa, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT2, tls.key: KEY2}
---
apiVersion: v1
kind: Secret
metadata: {name: client-ca, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT3, tls.key: KEY3, ca.crt: OTHERCA, ca.crl: OTHERCRL}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["gw.example.com"]
    tls: `

func inlineText(ds *core.DataSource) string {
	if f := ds.GetFilename(); f != "" {
		return "file:" + f
	}
	return string(ds.GetInlineBytes())
}

// The generated DownstreamTlsContext for each Gateway server tls form,
// as Istio's buildGatewayListenerTLSContext builds it.
func TestGatewayServerTLSContext(t *testing.T) {
	type want struct {
		require              bool
		certs                []string
		ca, crl              string
		sans, spki, hashes   []string
		untrusted, noContext bool
	}
	cases := []struct {
		name, tls string
		want      want
	}{
		{"SIMPLE", `{mode: SIMPLE, credentialName: cred}`, want{certs: []string{"CERT"}, noContext: true}},
		{"MUTUAL", `{mode: MUTUAL, credentialName: cred}`, want{require: true, certs: []string{"CERT"}, ca: "CA", crl: "CRL"}},
		{"OPTIONAL_MUTUAL", `{mode: OPTIONAL_MUTUAL, credentialName: cred, subjectAltNames: [a.example.com],
      verifyCertificateSpki: ["` + spkiB64 + `"], verifyCertificateHash: ["` + hashHex + `"]}`,
			want{certs: []string{"CERT"}, ca: "CA", crl: "CRL", sans: []string{"a.example.com"}, spki: []string{spkiB64}, hashes: []string{hashHex}}},
		{"credentialNames and caCertCredentialName", `{mode: MUTUAL, credentialNames: [cred, cred-ecdsa], caCertCredentialName: client-ca}`,
			want{require: true, certs: []string{"CERT", "CERT2"}, ca: "OTHERCA", crl: "OTHERCRL"}},
		{"files with caCrl", `{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, caCrl: /crl.pem}`,
			want{require: true, certs: []string{"file:/c.pem"}, ca: "file:/ca.pem", crl: "file:/crl.pem"}},
		{"tlsCertificates", `{mode: SIMPLE, tlsCertificates: [{serverCertificate: /r.pem, privateKey: /rk.pem}, {serverCertificate: /e.pem, privateKey: /ek.pem}]}`,
			want{certs: []string{"file:/r.pem", "file:/e.pem"}, noContext: true}},
		{"insecureSkipVerify", `{mode: MUTUAL, credentialName: cred, insecureSkipVerify: true, subjectAltNames: [a.example.com]}`,
			want{require: true, certs: []string{"CERT"}, ca: "CA", sans: []string{"a.example.com"}, untrusted: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := serverContext(t, generateYAML(t, gatewayTLSBase+tc.tls+"\n", router, nil))
			w := tc.want
			if got := ctx.GetRequireClientCertificate().GetValue(); got != w.require {
				t.Errorf("require_client_certificate %v, want %v", got, w.require)
			}
			var certs []string
			for _, c := range ctx.GetCommonTlsContext().GetTlsCertificates() {
				certs = append(certs, inlineText(c.GetCertificateChain()))
			}
			if !slices.Equal(certs, w.certs) {
				t.Errorf("certificates %v, want %v", certs, w.certs)
			}
			vc := ctx.GetCommonTlsContext().GetValidationContext()
			if w.noContext {
				if ctx.GetCommonTlsContext().GetValidationContextType() != nil {
					t.Errorf("SIMPLE got a validation context: %v", vc)
				}
				return
			}
			var sans []string
			for _, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck
				sans = append(sans, m.GetExact())
			}
			if inlineText(vc.GetTrustedCa()) != w.ca || inlineText(vc.GetCrl()) != w.crl || !slices.Equal(sans, w.sans) ||
				!slices.Equal(vc.GetVerifyCertificateSpki(), w.spki) || !slices.Equal(vc.GetVerifyCertificateHash(), w.hashes) ||
				(vc.GetTrustChainVerification() == tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED) != w.untrusted {
				t.Errorf("validation context %v, want %+v", vc, w)
			}
		})
	}
}

const (
	spkiB64 = "NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A="
	hashHex = "df6ff72fe9116521268f6f2dd4966f51df479883fe7037b39f75916ac3049d1a"
)

// ISTIO_MUTUAL Gateway servers check the clients' SANs as well.
func TestGatewayIstioMutualSANs(t *testing.T) {
	ctx := serverContext(t, generateYAML(t, gatewayTLSBase+"{mode: ISTIO_MUTUAL, subjectAltNames: [spiffe://cluster.local/ns/a/sa/b]}\n", router, nil))
	dvc := ctx.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext()
	if ms := dvc.GetMatchSubjectAltNames(); len(ms) != 1 || ms[0].GetExact() != "spiffe://cluster.local/ns/a/sa/b" || !ctx.GetRequireClientCertificate().GetValue() { //nolint:staticcheck
		t.Errorf("ISTIO_MUTUAL context %v", ctx)
	}
}

// DestinationRule caCrl and ServiceEntry subjectAltNames on the
// generated UpstreamTlsContext, as Istio's cluster_tls.go: a
// ServiceEntry's SANs verify its servers when the rule names none, for
// SIMPLE and for ISTIO_MUTUAL; the rule's own SANs win.
func TestUpstreamTLSContext(t *testing.T) {
	se := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  subjectAltNames: [api.example.com, backup.example.com]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: default}
spec:
  host: api.example.com
  trafficPolicy:
    tls: `
	cases := []struct {
		name, tls string
		sans      []string
		crl       string
		mesh      bool
	}{
		{"SIMPLE takes the ServiceEntry's SANs", `{mode: SIMPLE, caCertificates: /ca.pem, caCrl: /crl.pem}`, []string{"api.example.com", "backup.example.com"}, "file:/crl.pem", false},
		{"the rule's SANs win", `{mode: SIMPLE, subjectAltNames: [only.example.com]}`, []string{"only.example.com"}, "", false},
		{"ISTIO_MUTUAL takes the ServiceEntry's SANs", `{mode: ISTIO_MUTUAL}`, []string{"api.example.com", "backup.example.com"}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := generateYAML(t, se+tc.tls+"\n", sidecar("client", nil), nil)
			var ctx *tlsv3.UpstreamTlsContext
			for _, c := range res.Clusters {
				if c.Name == "outbound|443||api.example.com" && c.GetTransportSocket() != nil {
					ctx = &tlsv3.UpstreamTlsContext{}
					if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if ctx == nil {
				t.Fatalf("no TLS cluster; conflicts %v", res.Conflicts)
			}
			vc := ctx.GetCommonTlsContext().GetValidationContext()
			if tc.mesh {
				vc = ctx.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext()
			}
			var sans []string
			for _, m := range vc.GetMatchTypedSubjectAltNames() {
				sans = append(sans, m.GetMatcher().GetExact())
			}
			if !slices.Equal(sans, tc.sans) || inlineText(vc.GetCrl()) != tc.crl {
				t.Errorf("SANs %v crl %q, want %v %q", sans, inlineText(vc.GetCrl()), tc.sans, tc.crl)
			}
		})
	}
}
