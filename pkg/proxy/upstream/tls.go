package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/tlsverify"
)

// WorkloadIdentity is the proxy's mesh identity: the certificate it
// presents for Envoy's SDS secret "default", and the check of a peer
// against the mesh roots (SDS "ROOTCA") and expected SPIFFE IDs.
type WorkloadIdentity interface {
	Certificate() (*tls.Certificate, error)
	VerifyPeer(rawCerts [][]byte, ids []string) error
}

// TLSOptions is how a cluster originates TLS to its hosts (Envoy's
// UpstreamTlsContext). Every field is comparable so transports with equal
// options are reused across config pushes.
type TLSOptions struct {
	Enabled bool
	// SNI is the server name sent; empty sends the host name of the
	// address when it is a name (DNS clusters).
	SNI string
	// CAPEM verifies the server; empty uses the system roots.
	CAPEM string
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool
	// SANs, when set, are the names the server certificate must carry
	// (comma separated); otherwise the SNI is verified.
	SANs string
	// CertPEM and KeyPEM are the client certificate (mutual TLS).
	CertPEM, KeyPEM string
	// ALPN protocols, comma separated.
	ALPN                   string
	MinVersion, MaxVersion uint16
	// Workload presents the proxy's mesh certificate (SDS "default");
	// MeshPeer verifies the server against the mesh roots (SDS "ROOTCA"),
	// and its SPIFFE ID against PeerIDs (comma separated) when set.
	Workload, MeshPeer bool
	PeerIDs            string
	// CRLPEM revokes server certificates (Envoy's crl): every certificate
	// of the verified chain below the root needs a current CRL from its
	// issuer that does not list it (pkg/proxy/tlsverify).
	CRLPEM string
}

// tlsSessionCacheSize is how many TLS sessions a transport keeps for
// resumption (one per server name, or per address without one).
const tlsSessionCacheSize = 64

// rawCerts is the DER of certs.
func rawCerts(certs []*x509.Certificate) [][]byte {
	raw := make([][]byte, len(certs))
	for i, c := range certs {
		raw[i] = c.Raw
	}
	return raw
}

// forAddr is base for one connection to addr: a copy with the server
// name, when the options do not set one, from addr's host name.
func forAddr(base *tls.Config, addr string) *tls.Config {
	cfg := base.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil && net.ParseIP(host) == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}

// tlsBase is a transport's client TLS config without what depends on the
// address, made at its first connection: the CA pool, the client key pair
// and the CRLs are parsed once per transport, not per connection. A
// transport's options (secrets included) never change, new ones make a
// new transport, so the cache needs no version.
type tlsBase struct {
	once sync.Once
	cfg  *tls.Config
	err  error
}

// tlsConfig is the config for one connection of the transport to addr.
func (t *Transport) tlsConfig(addr string) (*tls.Config, error) {
	b := &t.tlsBase
	b.once.Do(func() { b.cfg, b.err = t.Options.TLS.baseConfig(t.Options.Identity) })
	if b.err != nil {
		return nil, b.err
	}
	return forAddr(b.cfg, addr), nil
}

// baseConfig builds the parts of the tls.Config that do not depend on
// the address connected to.
func (o *TLSOptions) baseConfig(id WorkloadIdentity) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: o.MinVersion, MaxVersion: o.MaxVersion, InsecureSkipVerify: o.InsecureSkipVerify}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.ServerName = o.SNI
	// Session resumption, as Envoy's upstream TLS has by default
	// (UpstreamTlsContext.max_session_keys, 1 by default; sluice keeps a
	// few per transport, keyed by server name or address as crypto/tls
	// keys them): a new connection to a server seen before skips the
	// certificate exchange. Every check below is in VerifyConnection,
	// which crypto/tls runs on resumed connections too (it skips
	// VerifyPeerCertificate there), so a resumed session is re-verified
	// against the current trust bundle and names.
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(tlsSessionCacheSize)
	if o.ALPN != "" {
		cfg.NextProtos = strings.Split(o.ALPN, ",")
	}
	if o.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(o.CAPEM)) {
			return nil, errors.New("upstream tls: no certificate in the CA bundle")
		}
		cfg.RootCAs = pool
	}
	if o.CertPEM != "" {
		pair, err := tls.X509KeyPair([]byte(o.CertPEM), []byte(o.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("upstream tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.Workload || o.MeshPeer {
		if id == nil {
			return nil, errors.New("upstream tls: the config asks for the mesh identity, which this proxy has none of")
		}
		if o.Workload {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.Certificate() }
		}
		if o.MeshPeer {
			var ids []string
			if o.PeerIDs != "" {
				ids = strings.Split(o.PeerIDs, ",")
			}
			cfg.InsecureSkipVerify = true // verified below, against the mesh roots and SPIFFE IDs
			cfg.VerifyConnection = func(cs tls.ConnectionState) error { return id.VerifyPeer(rawCerts(cs.PeerCertificates), ids) }
			return cfg, nil
		}
	}
	if o.CRLPEM != "" && !o.InsecureSkipVerify {
		crls, err := tlsverify.ParseCRLs([]byte(o.CRLPEM))
		if err != nil {
			return nil, fmt.Errorf("upstream tls: %w", err)
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := tlsverify.CheckRevocation(cs.VerifiedChains, crls, time.Now()); err != nil {
				return fmt.Errorf("upstream tls: %w", err)
			}
			return nil
		}
	}
	if o.SANs != "" && !o.InsecureSkipVerify {
		crlCheck := cfg.VerifyConnection
		sans := strings.Split(o.SANs, ",")
		roots := cfg.RootCAs
		// Verify the chain ourselves so the names checked are the SANs.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("upstream tls: no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			if err != nil {
				return fmt.Errorf("upstream tls: %w", err)
			}
			if crlCheck != nil {
				if err := crlCheck(tls.ConnectionState{VerifiedChains: chains}); err != nil {
					return err
				}
			}
			for _, san := range sans {
				if leaf.VerifyHostname(san) == nil {
					return nil
				}
			}
			return fmt.Errorf("upstream tls: certificate names %v match none of %v", leaf.DNSNames, sans)
		}
	}
	return cfg, nil
}

// Dial connects to addr as the cluster's hosts are reached: through the
// proxy's host overrides, with TLS when the cluster originates it (offering
// the cluster's ALPN). tcp_proxy counts these connections itself.
func (t *Transport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, _, err := t.DialPrincipals(ctx, addr)
	return c, err
}

// DialPrincipals is Dial also returning the TLS connection's identities
// (zero for plaintext), for the TCP proxy's standard metrics.
func (t *Transport) DialPrincipals(ctx context.Context, addr string) (net.Conn, Principals, error) {
	c, err := t.dialRaw(ctx, "tcp", addr)
	if err != nil || !t.Options.TLS.Enabled {
		return c, Principals{}, err
	}
	alpn := []string{}
	if t.Options.TLS.ALPN != "" {
		alpn = strings.Split(t.Options.TLS.ALPN, ",")
	}
	tc, p, err := t.handshake(ctx, c, addr, alpn)
	if err != nil {
		return nil, Principals{}, err // not a typed nil *tls.Conn in the interface
	}
	return tc, p, nil
}

// dialRaw opens the TCP connection to addr, through the host overrides.
func (t *Transport) dialRaw(ctx context.Context, network, addr string) (net.Conn, error) {
	target := addr
	if path, ok := pipePath(addr); ok {
		network, target = "unix", path
	} else if t.Options.Hosts != nil {
		target = t.Options.Hosts.Rewrite(addr)
	}
	if src := t.Options.BindSource; src.IsValid() && network != "unix" {
		d := *t.dialer
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		return d.DialContext(ctx, network, target)
	}
	if src := t.Options.SourceIP; src.IsValid() && network != "unix" && sourceReaches(src, target) {
		d := *t.dialer
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		return d.DialContext(ctx, network, target)
	}
	return t.dialer.DialContext(ctx, network, target)
}

// sourceReaches reports whether a connection bound to src can reach
// target (host:port): a loopback source reaches only loopback addresses,
// and a name is not resolved here, so it is dialled unbound from one.
func sourceReaches(src netip.Addr, target string) bool {
	if !src.IsLoopback() {
		return true
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback() && ip.Unmap().Is4() == src.Unmap().Is4()
}

// localCertificate is the client certificate the transport presents
// (nil when it has none).
func (t *Transport) localCertificate(cfg *tls.Config) *tls.Certificate {
	if t.Options.TLS.Workload && t.Options.Identity != nil {
		c, err := t.Options.Identity.Certificate()
		if err != nil {
			return nil
		}
		return c
	}
	if len(cfg.Certificates) > 0 {
		return &cfg.Certificates[0]
	}
	return nil
}

// handshake originates TLS on c offering alpn. It returns the *tls.Conn
// itself (net/http reads the negotiated protocol from it) and the
// connection's identities.
func (t *Transport) handshake(ctx context.Context, c net.Conn, addr string, alpn []string) (*tls.Conn, Principals, error) {
	cfg, err := t.tlsConfig(addr)
	if err != nil {
		c.Close()
		return nil, Principals{}, err
	}
	cfg.NextProtos = alpn
	var sent *tls.Certificate
	recordClientCert(cfg, &sent)
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, Principals{}, fmt.Errorf("upstream tls handshake with %s: %w", addr, err)
	}
	cs := tc.ConnectionState()
	if cs.DidResume && sent == nil {
		// A resumed session sends no certificate: ours is the one the
		// session was made with, the same identity as now.
		sent = t.localCertificate(cfg)
	}
	return tc, principalsOf(&cs, sent), nil
}
