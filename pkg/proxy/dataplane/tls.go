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
// DownstreamTlsContext: certificate (inline or file), client certificate
// validation, protocol versions and ALPN.
func compileServerTLS(ts *core.TransportSocket, id upstream.WorkloadIdentity) (*ServerTLS, error) {
	if ts.Name != "envoy.transport_sockets.tls" {
		return nil, fmt.Errorf("transport socket %q is not supported", ts.Name)
	}
	var ctx tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&ctx); err != nil {
		return nil, fmt.Errorf("tls context: %w", err)
	}
	common := ctx.GetCommonTlsContext()
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
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	if len(cfg.Certificates) == 0 && !mesh.cert {
		return nil, fmt.Errorf("tls context: no certificate")
	}
	if p := common.GetTlsParams(); p != nil {
		if v, ok := tlsVersion[p.TlsMinimumProtocolVersion]; ok {
			cfg.MinVersion = v
		}
		if v, ok := tlsVersion[p.TlsMaximumProtocolVersion]; ok {
			cfg.MaxVersion = v
		}
		if len(p.CipherSuites) > 0 {
			ids, err := cipherSuites(p.CipherSuites)
			if err != nil {
				return nil, err
			}
			cfg.CipherSuites = ids
		}
	}
	if mesh.roots {
		// Clients must present a mesh certificate (ISTIO_MUTUAL); the chain
		// and SPIFFE ID are checked against the mesh roots.
		cfg.ClientAuth = tls.RequestClientCert
		if ctx.GetRequireClientCertificate().GetValue() {
			cfg.ClientAuth = tls.RequireAnyClientCert
		}
		ids := mesh.ids
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil // only reachable when a certificate was optional
			}
			return id.VerifyPeer(raw, ids)
		}
	} else if vc := common.GetValidationContext(); vc != nil && vc.GetTrustedCa() != nil {
		caPEM, err := readDataSource(vc.GetTrustedCa())
		if err != nil {
			return nil, fmt.Errorf("trusted_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("trusted_ca: no PEM certificate found")
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if ctx.GetRequireClientCertificate().GetValue() {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	} else if ctx.GetRequireClientCertificate().GetValue() {
		return nil, fmt.Errorf("require_client_certificate without a trusted_ca")
	}
	noALPN := cfg.Clone()
	noALPN.NextProtos = nil
	return &ServerTLS{Config: cfg, noALPN: noALPN}, nil
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
