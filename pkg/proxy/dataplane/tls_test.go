package dataplane

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/proxy/upstream"
)

func inline(b []byte) *core.DataSource {
	return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
}

func socket(t *testing.T, m proto.Message) *core.TransportSocket {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}
}

// tlsFixture is a server certificate and two client CAs' worth of client
// certificates.
type tlsFixture struct {
	ca, other          *testenv.CA
	srvCert, srvKey    []byte
	goodPEM, badPEM    []byte
	good, bad, foreign tls.Certificate
	goodLeaf           *x509.Certificate
}

func newTLSFixture(t *testing.T) *tlsFixture {
	f := &tlsFixture{ca: testenv.NewCA(t, "client-ca"), other: testenv.NewCA(t, "other-ca")}
	f.srvCert, f.srvKey = f.ca.Issue(t, "gw.example.com")
	var goodKey, badKey []byte
	f.goodPEM, goodKey = f.ca.Issue(t, "good.example.com")
	f.badPEM, badKey = f.ca.Issue(t, "bad.example.com")
	var err error
	if f.good, err = tls.X509KeyPair(f.goodPEM, goodKey); err != nil {
		t.Fatal(err)
	}
	if f.bad, err = tls.X509KeyPair(f.badPEM, badKey); err != nil {
		t.Fatal(err)
	}
	f.foreign = f.other.ClientCert(t, "good.example.com")
	block, _ := pem.Decode(f.goodPEM)
	f.goodLeaf, _ = x509.ParseCertificate(block.Bytes)
	return f
}

// downstream is the DownstreamTlsContext xdsgen emits for a Gateway
// server, with vc as its validation context.
func (f *tlsFixture) downstream(require bool, vc *tlsv3.CertificateValidationContext) *tlsv3.DownstreamTlsContext {
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{CertificateChain: inline(f.srvCert), PrivateKey: inline(f.srvKey)}},
	}, RequireClientCertificate: wrapperspb.Bool(require)}
	if vc != nil {
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	}
	return ctx
}

// handshake runs a real TLS handshake over loopback between a server
// with st and a client presenting cert (nil: none); it returns the
// server's verdict.
func handshake(t *testing.T, st *ServerTLS, roots *x509.CertPool, cert *tls.Certificate) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		sc := tls.Server(c, st.Config)
		sc.SetDeadline(time.Now().Add(5 * time.Second))
		err = sc.Handshake()
		if err == nil {
			_, err = sc.Write([]byte("ok"))
		}
		done <- err
	}()
	cfg := &tls.Config{ServerName: "gw.example.com", RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2)
		conn.Read(buf)
		conn.Close()
	}
	return <-done
}

// Gateway client certificate checks, end to end through crypto/tls:
// OPTIONAL_MUTUAL (verify if given), MUTUAL, SAN matching, SPKI and hash
// pinning, CRL revocation.
func TestServerTLSClientCertificates(t *testing.T) {
	f := newTLSFixture(t)
	spki := sha256.Sum256(f.goodLeaf.RawSubjectPublicKeyInfo)
	hash := sha256.Sum256(f.goodLeaf.Raw)
	hashHex := strings.ToUpper(hex.EncodeToString(hash[:]))
	var colons []string
	for i := 0; i < len(hashHex); i += 2 {
		colons = append(colons, hashHex[i:i+2])
	}
	ca := inline(f.ca.CertPEM)
	exact := func(s string) *matcher.StringMatcher {
		return &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: s}}
	}
	type client struct {
		name string
		cert *tls.Certificate
		ok   bool
	}
	none, good, bad, foreign := (*tls.Certificate)(nil), &f.good, &f.bad, &f.foreign
	cases := []struct {
		name    string
		require bool
		vc      *tlsv3.CertificateValidationContext
		clients []client
	}{
		{"OPTIONAL_MUTUAL", false, &tlsv3.CertificateValidationContext{TrustedCa: ca}, []client{
			{"no certificate", none, true}, {"certificate from the CA", good, true}, {"certificate from another CA", foreign, false}}},
		{"MUTUAL", true, &tlsv3.CertificateValidationContext{TrustedCa: ca}, []client{
			{"no certificate", none, false}, {"certificate from the CA", good, true}, {"certificate from another CA", foreign, false}}},
		{"SIMPLE", false, nil, []client{{"no certificate", none, true}, {"any certificate", foreign, true}}},
		{"subjectAltNames", true, &tlsv3.CertificateValidationContext{TrustedCa: ca,
			MatchSubjectAltNames: []*matcher.StringMatcher{exact("good.example.com")}}, []client{ //nolint:staticcheck
			{"matching SAN", good, true}, {"SAN mismatch", bad, false}, {"matching SAN, wrong CA", foreign, false}}},
		{"OPTIONAL_MUTUAL subjectAltNames", false, &tlsv3.CertificateValidationContext{TrustedCa: ca,
			MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS, Matcher: exact("good.example.com")}}}, []client{
			{"no certificate", none, true}, {"matching SAN", good, true}, {"SAN mismatch", bad, false}}},
		{"verifyCertificateSpki", true, &tlsv3.CertificateValidationContext{TrustedCa: ca,
			VerifyCertificateSpki: []string{base64.StdEncoding.EncodeToString(spki[:])}}, []client{
			{"pinned key", good, true}, {"other key, same CA", bad, false}}},
		{"verifyCertificateHash", true, &tlsv3.CertificateValidationContext{TrustedCa: ca,
			VerifyCertificateHash: []string{strings.Join(colons, ":")}}, []client{
			{"pinned certificate", good, true}, {"other certificate, same CA", bad, false}}},
		{"caCrl", true, &tlsv3.CertificateValidationContext{TrustedCa: ca, Crl: inline(f.ca.CRL(t, f.badPEM))}, []client{
			{"not revoked", good, true}, {"revoked", bad, false}}},
		{"caCrl from another issuer only", true, &tlsv3.CertificateValidationContext{TrustedCa: ca, Crl: inline(f.other.CRL(t))}, []client{
			{"no CRL from its issuer (as Envoy: refused)", good, false}}},
		{"insecureSkipVerify with SANs", true, &tlsv3.CertificateValidationContext{TrustedCa: ca,
			TrustChainVerification: tlsv3.CertificateValidationContext_ACCEPT_UNTRUSTED,
			MatchSubjectAltNames:   []*matcher.StringMatcher{exact("good.example.com")}}, []client{ //nolint:staticcheck
			{"untrusted CA, matching SAN", foreign, true}, {"SAN mismatch", bad, false}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := compileServerTLS(socket(t, f.downstream(tc.require, tc.vc)), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.clients {
				err := handshake(t, st, f.ca.Pool, c.cert)
				if (err == nil) != c.ok {
					t.Errorf("%s: handshake error %v, want success %v", c.name, err, c.ok)
				}
			}
		})
	}
}

// Every field of the TLS messages the proxy does not honour is refused
// with its name, never dropped.
func TestServerTLSAllowList(t *testing.T) {
	f := newTLSFixture(t)
	ca := inline(f.ca.CertPEM)
	cases := map[string]*tlsv3.DownstreamTlsContext{}
	d := f.downstream(false, nil)
	d.SessionTimeout = durationpb.New(time.Minute)
	cases["session_timeout"] = d
	d = f.downstream(false, nil)
	d.RequireSni = wrapperspb.Bool(true)
	cases["require_sni"] = d
	d = f.downstream(true, &tlsv3.CertificateValidationContext{TrustedCa: ca, AllowExpiredCertificate: true})
	cases["allow_expired_certificate"] = d
	d = f.downstream(false, nil)
	d.CommonTlsContext.TlsParams = &tlsv3.TlsParameters{SignatureAlgorithms: []string{"ecdsa_secp256r1_sha256"}}
	cases["signature_algorithms"] = d
	d = f.downstream(false, nil)
	d.CommonTlsContext.TlsCertificates[0].OcspStaple = inline([]byte("x"))
	cases["ocsp_staple"] = d
	d = f.downstream(true, &tlsv3.CertificateValidationContext{Crl: inline(f.ca.CRL(t))})
	cases["crl needs a trusted_ca"] = d
	d = f.downstream(true, nil)
	cases["require_client_certificate without a validation context"] = d
	for want, ctx := range cases {
		if _, err := compileServerTLS(socket(t, ctx), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error naming it", want, err)
		}
	}
	up := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}, AllowRenegotiation: true}
	if _, err := upstreamTLS(socket(t, up)); err == nil || !strings.Contains(err.Error(), "allow_renegotiation") {
		t.Errorf("upstream allow_renegotiation: got %v", err)
	}
}

// A DestinationRule's caCrl: the proxy refuses an upstream whose
// certificate the CRL revokes, over a real handshake.
func TestUpstreamTLSCRL(t *testing.T) {
	ca := testenv.NewCA(t, "upstream-ca")
	goodCert, goodKey := ca.Issue(t, "good.example.com")
	badCert, badKey := ca.Issue(t, "bad.example.com")
	crl := ca.CRL(t, badCert)
	serve := func(certPEM, keyPEM []byte) string {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name, sni string
		cert, key []byte
		ok        bool
	}{{"not revoked", "good.example.com", goodCert, goodKey, true}, {"revoked", "bad.example.com", badCert, badKey, false}} {
		addr := serve(tc.cert, tc.key)
		ctx := &tlsv3.UpstreamTlsContext{Sni: tc.sni, CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: inline(ca.CertPEM), Crl: inline(crl)}}}}
		opts, err := upstreamTLS(socket(t, ctx))
		if err != nil {
			t.Fatal(err)
		}
		if opts.CRLPEM == "" {
			t.Fatal("crl dropped")
		}
		tr := upstream.NewTransport(upstream.TransportOptions{TLS: opts, ConnectTimeout: 5 * time.Second}, nil)
		c, err := tr.Dial(context.Background(), addr)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: dial error %v, want success %v", tc.name, err, tc.ok)
		}
	}
}
