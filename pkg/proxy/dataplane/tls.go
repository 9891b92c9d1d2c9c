package dataplane

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

// ServerTLS is a compiled DownstreamTlsContext.
type ServerTLS struct {
	Config *tls.Config
	// noALPN is Config without ALPN, for clients whose protocols overlap
	// none of Config's: Envoy then goes on without ALPN, where Go's server
	// would abort the handshake.
	noALPN *tls.Config
}

// ConfigFor is the config for one ClientHello.
func (s *ServerTLS) ConfigFor(hello *tls.ClientHelloInfo) *tls.Config {
	if len(hello.SupportedProtos) == 0 || len(s.Config.NextProtos) == 0 {
		return s.Config
	}
	for _, p := range hello.SupportedProtos {
		for _, q := range s.Config.NextProtos {
			if p == q {
				return s.Config
			}
		}
	}
	return s.noALPN
}

var tlsVersion = map[tlsv3.TlsParameters_TlsProtocol]uint16{
	tlsv3.TlsParameters_TLSv1_0: tls.VersionTLS10,
	tlsv3.TlsParameters_TLSv1_1: tls.VersionTLS11,
	tlsv3.TlsParameters_TLSv1_2: tls.VersionTLS12,
	tlsv3.TlsParameters_TLSv1_3: tls.VersionTLS13,
}

// compileServerTLS builds a Go TLS server config from Envoy's
// DownstreamTlsContext: certificates (inline, file or the mesh identity),
// client certificate validation (required or, without
// require_client_certificate, verified when presented: Istio's
// OPTIONAL_MUTUAL), protocol versions, ciphers, curves and ALPN. A field
// the proxy does not honour is an error naming it.
func compileServerTLS(ts *core.TransportSocket, id upstream.WorkloadIdentity) (*ServerTLS, error) {
	if ts.Name != "envoy.transport_sockets.tls" {
		return nil, fmt.Errorf("transport socket %q is not supported", ts.Name)
	}
	var ctx tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return nil, fmt.Errorf("tls context: %w", err)
	}
	if err := onlyFields(&ctx, "downstream tls context", downstreamFields...); err != nil {
		return nil, err
	}
	common := ctx.GetCommonTlsContext()
	if err := checkCommon(common); err != nil {
		return nil, fmt.Errorf("tls context: %w", err)
	}
	mesh, err := sdsRefs(common)
	if err != nil {
		return nil, fmt.Errorf("tls context: %w", err)
	}
	if (mesh.cert || mesh.roots) && id == nil {
		return nil, fmt.Errorf("tls context: asks for the mesh identity, which this proxy has none of")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: common.GetAlpnProtocols()}
	if mesh.cert {
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return id.Certificate() }
	}
	if cfg.Certificates, err = serverCertificates(common); err != nil {
		return nil, err
	}
	if len(cfg.Certificates) == 0 && !mesh.cert {
		return nil, fmt.Errorf("tls context: no certificate")
	}
	if err := applyParams(cfg, common.GetTlsParams()); err != nil {
		return nil, err
	}
	if err := clientVerification(cfg, &ctx, mesh, id); err != nil {
		return nil, fmt.Errorf("tls context: %w", err)
	}
	noALPN := cfg.Clone()
	noALPN.NextProtos = nil
	return &ServerTLS{Config: cfg, noALPN: noALPN}, nil
}

func serverCertificates(common *tlsv3.CommonTlsContext) ([]tls.Certificate, error) {
	var out []tls.Certificate
	for i, c := range common.GetTlsCertificates() {
		certPEM, err := readDataSource(c.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("tls certificate %d: certificate_chain: %w", i, err)
		}
		keyPEM, err := readDataSource(c.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("tls certificate %d: private_key: %w", i, err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls certificate %d: %w", i, err)
		}
		out = append(out, pair)
	}
	return out, nil
}

func applyParams(cfg *tls.Config, p *tlsv3.TlsParameters) error {
	if p == nil {
		return nil
	}
	if v, ok := tlsVersion[p.TlsMinimumProtocolVersion]; ok {
		cfg.MinVersion = v
	}
	if v, ok := tlsVersion[p.TlsMaximumProtocolVersion]; ok {
		cfg.MaxVersion = v
	}
	if len(p.CipherSuites) > 0 {
		ids, err := cipherSuites(p.CipherSuites)
		if err != nil {
			return err
		}
		cfg.CipherSuites = ids
	}
	for _, c := range p.EcdhCurves {
		id, ok := ecdhCurves[c]
		if !ok {
			return fmt.Errorf("ecdh curve %q is not supported", c)
		}
		cfg.CurvePreferences = append(cfg.CurvePreferences, id)
	}
	return nil
}

// ecdhCurves maps Envoy's (BoringSSL) curve names to Go's.
var ecdhCurves = map[string]tls.CurveID{
	"X25519": tls.X25519, "P-256": tls.CurveP256, "P-384": tls.CurveP384, "P-521": tls.CurveP521,
}

// clientVerification sets how client certificates are asked for and
// checked. With something to check them against (trusted_ca, the mesh
// roots, SAN matchers or pins) the client is asked for one; it must send
// one only with require_client_certificate (Go's RequireAnyClientCert
// versus RequestClientCert, the chain and the rest checked here, as
// Envoy's validator does: VerifyClientCertIfGiven in effect).
func clientVerification(cfg *tls.Config, ctx *tlsv3.DownstreamTlsContext, mesh meshTLS, id upstream.WorkloadIdentity) error {
	vc := validationContext(ctx.GetCommonTlsContext())
	policy, err := compileValidation(vc, mesh.roots)
	if err != nil {
		return err
	}
	require := ctx.GetRequireClientCertificate().GetValue()
	if !wantsClientCert(vc, mesh.roots) {
		if require {
			return fmt.Errorf("require_client_certificate without a validation context to check it")
		}
		return nil
	}
	cfg.ClientAuth = tls.RequestClientCert
	if require {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	meshRoots := mesh.roots
	// VerifyConnection, not VerifyPeerCertificate: crypto/tls runs it on
	// resumed sessions too (with the session's client chain), so a client
	// resuming (Envoy resumes by default) is checked against the current
	// roots and policy, not only at its first handshake.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		certs := cs.PeerCertificates
		if len(certs) == 0 {
			return nil // only reachable when a certificate is optional
		}
		if meshRoots {
			// The chain against the mesh roots; the SANs (SPIFFE IDs or
			// others) by the policy, any one matching as in Envoy.
			raw := make([][]byte, len(certs))
			for i, c := range certs {
				raw[i] = c.Raw
			}
			if err := id.VerifyPeer(raw, nil); err != nil {
				return err
			}
		}
		return policy.Verify(certs)
	}
	return nil
}

func readDataSource(ds *core.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *core.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *core.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *core.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("empty or unsupported data source")
}

// cipherSuites maps Envoy's (BoringSSL) cipher names to Go's suites.
func cipherSuites(names []string) ([]uint16, error) {
	byName := map[string]uint16{}
	for _, s := range tls.CipherSuites() {
		byName[s.Name] = s.ID
	}
	boring := map[string]string{
		"ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"ECDHE-RSA-AES128-GCM-SHA256":   "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"ECDHE-RSA-AES256-GCM-SHA384":   "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
		"ECDHE-RSA-CHACHA20-POLY1305":   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	}
	var ids []uint16
	for _, n := range names {
		if g, ok := boring[n]; ok {
			n = g
		}
		id, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("cipher suite %q is not supported", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// LocalCertificate is the certificate the proxy presents on a connection
// this chain terminated for hello (the mesh identity's, or the configured
// one for the client's server name): what XFCC's By= names.
func (s *ServerTLS) LocalCertificate(hello *tls.ClientHelloInfo) *x509.Certificate {
	cfg := s.Config
	if cfg.GetCertificate != nil {
		if c, err := cfg.GetCertificate(hello); err == nil && c != nil {
			return leafOf(c)
		}
	}
	for i := range cfg.Certificates {
		c := &cfg.Certificates[i]
		if leaf := leafOf(c); leaf != nil && (len(cfg.Certificates) == 1 || hello == nil || leaf.VerifyHostname(hello.ServerName) == nil) {
			return leaf
		}
	}
	if len(cfg.Certificates) > 0 {
		return leafOf(&cfg.Certificates[0])
	}
	return nil
}

func leafOf(c *tls.Certificate) *x509.Certificate {
	if c.Leaf != nil {
		return c.Leaf
	}
	if len(c.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}
