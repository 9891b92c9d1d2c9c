package httpproxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
)

func parseLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestXFCCModes: every forward_client_cert_details mode on an mTLS and a
// plaintext connection, as Envoy's mutateXfccRequestHeader, and each
// set_current_client_cert_details field in Envoy's format.
func TestXFCCModes(t *testing.T) {
	ca := testenv.NewCA(t, "ca")
	peerPEM, _ := ca.Issue(t, "client.example.com", "alt.example.com")
	peer := parseLeaf(t, peerPEM)
	peer.URIs = nil // the testenv CA issues DNS names only
	localPEM, _ := ca.Issue(t, "server.example.com")
	local := parseLeaf(t, localPEM)
	local.URIs = []*url.URL{{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/default/sa/server"}}
	mtls := &ConnInfo{Local: local}
	mtls.Conn.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer, parseLeaf(t, ca.CertPEM)}}
	plain := &ConnInfo{}
	sum := sha256.Sum256(peer.Raw)
	hash := hex.EncodeToString(sum[:])
	elem := `By=spiffe://cluster.local/ns/default/sa/server;Hash=` + hash + `;Subject="` + peer.Subject.String() + `";URI=`
	all := []dataplane.XFCCDetail{dataplane.XFCCSubject, dataplane.XFCCURI}
	for _, c := range []struct {
		name string
		mode dataplane.XFCCMode
		ci   *ConnInfo
		in   string
		want string
	}{
		{"sanitize mTLS", dataplane.XFCCSanitize, mtls, "By=x", ""},
		{"forward only mTLS", dataplane.XFCCForwardOnly, mtls, "By=x", "By=x"},
		{"forward only plaintext", dataplane.XFCCForwardOnly, plain, "By=x", ""},
		{"append forward mTLS", dataplane.XFCCAppendForward, mtls, "By=x", "By=x," + elem},
		{"append forward mTLS, none yet", dataplane.XFCCAppendForward, mtls, "", elem},
		{"append forward plaintext", dataplane.XFCCAppendForward, plain, "By=x", ""},
		{"sanitize set mTLS", dataplane.XFCCSanitizeSet, mtls, "By=x", elem},
		{"sanitize set plaintext", dataplane.XFCCSanitizeSet, plain, "By=x", ""},
		{"always forward only plaintext", dataplane.XFCCAlwaysForwardOnly, plain, "By=x", "By=x"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.in != "" {
			r.Header.Set(xfccHeader, c.in)
		}
		applyXFCC(r, c.ci, &dataplane.XFCC{Mode: c.mode, Details: all})
		if got := strings.Join(r.Header.Values(xfccHeader), "|"); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}

	// Every detail, in Envoy's order: Cert, Chain, Subject, URI, DNS.
	every := &dataplane.XFCC{Mode: dataplane.XFCCSanitizeSet, Details: []dataplane.XFCCDetail{
		dataplane.XFCCCert, dataplane.XFCCChain, dataplane.XFCCSubject, dataplane.XFCCURI, dataplane.XFCCDNS}}
	got := xfccElement(mtls, every)
	enc := func(p string) string {
		return strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(p)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: peer.Raw}))
	chainPEM := certPEM + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: parseLeaf(t, ca.CertPEM).Raw}))
	want := `By=spiffe://cluster.local/ns/default/sa/server;Hash=` + hash + `;Cert="` + enc(certPEM) + `";Chain="` + enc(chainPEM) +
		`";Subject="` + peer.Subject.String() + `";URI=;DNS=client.example.com;DNS=alt.example.com`
	if got != want {
		t.Errorf("element:\n got %s\nwant %s", got, want)
	}
	if strings.ContainsAny(got[strings.Index(got, "Cert="):], "\n ") {
		t.Errorf("PEM not URL-encoded: %q", got)
	}
}
