package xdsredact

import (
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// A private key inlined in a listener's DownstreamTlsContext (a gateway's
// credentialName secret) is redacted in the dump, inside the Any; the
// certificate chain is not; the original is untouched.
func TestRedactPrivateKeyInTypedConfig(t *testing.T) {
	const key, cert = "-----BEGIN PRIVATE KEY-----secret", "-----BEGIN CERTIFICATE-----public"
	tlsCtx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{
		CertificateChain: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: []byte(cert)}},
		PrivateKey:       &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: []byte(key)}},
	}}}}
	tc, err := anypb.New(tlsCtx)
	if err != nil {
		t.Fatal(err)
	}
	l := &listener.Listener{Name: "gw", FilterChains: []*listener.FilterChain{{TransportSocket: &core.TransportSocket{
		Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: tc}}}}}
	out, err := protojson.Marshal(Redact(l))
	if err != nil {
		t.Fatal(err)
	}
	inner := &tlsv3.DownstreamTlsContext{}
	if err := l.FilterChains[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(inner); err != nil {
		t.Fatal(err)
	}
	if string(inner.CommonTlsContext.TlsCertificates[0].PrivateKey.GetInlineBytes()) != key {
		t.Error("Redact changed its argument")
	}
	red := &listener.Listener{}
	if err := protojson.Unmarshal(out, red); err != nil {
		t.Fatal(err)
	}
	got := &tlsv3.DownstreamTlsContext{}
	red.FilterChains[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(got)
	tc0 := got.CommonTlsContext.TlsCertificates[0]
	if string(tc0.PrivateKey.GetInlineBytes()) != Redacted {
		t.Errorf("private key dumped as %q", tc0.PrivateKey.GetInlineBytes())
	}
	if string(tc0.CertificateChain.GetInlineBytes()) != cert {
		t.Errorf("certificate chain changed: %q", tc0.CertificateChain.GetInlineBytes())
	}
	if strings.Contains(string(out), "secret") {
		t.Error("the key's bytes appear in the dump")
	}
}
