package tlsverify

import (
	"crypto/x509"
	"net"
	"net/url"
	"testing"
)

// SAN matching as Envoy's: typed matchers look at their type only, the
// untyped at all four; an exact DNS matcher is covered by a wildcard SAN
// of one label.
func TestMatchSANs(t *testing.T) {
	u, _ := url.Parse("spiffe://td/ns/a/sa/b")
	leaf := &x509.Certificate{DNSNames: []string{"*.example.com", "api.test"}, URIs: []*url.URL{u},
		EmailAddresses: []string{"ops@example.com"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}
	cases := []struct {
		m    SANMatcher
		want bool
	}{
		{SANMatcher{Type: SANDNS, Exact: "api.test"}, true},
		{SANMatcher{Type: SANDNS, Exact: "foo.example.com"}, true},
		{SANMatcher{Type: SANDNS, Exact: "a.b.example.com"}, false},
		{SANMatcher{Type: SANURI, Exact: "api.test"}, false},
		{SANMatcher{Type: SANURI, Prefix: "spiffe://td/"}, true},
		{SANMatcher{Type: SANAny, Exact: "spiffe://td/ns/a/sa/b"}, true},
		{SANMatcher{Type: SANAny, Exact: "ops@example.com"}, true},
		{SANMatcher{Type: SANIP, Exact: "10.0.0.1"}, true},
		{SANMatcher{Type: SANEmail, Suffix: "@EXAMPLE.COM", IgnoreCase: true}, true},
		{SANMatcher{Type: SANEmail, Suffix: "@EXAMPLE.COM"}, false},
		{SANMatcher{Type: SANDNS, Contains: "pi.te"}, true},
	}
	for _, c := range cases {
		if got := MatchSANs(leaf, []SANMatcher{c.m}); got != c.want {
			t.Errorf("%+v: got %v, want %v", c.m, got, c.want)
		}
	}
}

// Pins parse Envoy's forms and nothing else.
func TestParsePins(t *testing.T) {
	if _, err := ParseHash("DF:6F:f7:2f:e9:11:65:21:26:8f:6f:2d:d4:96:6f:51:df:47:98:83:fe:70:37:b3:9f:75:91:6a:c3:04:9d:1a"); err != nil {
		t.Error(err)
	}
	if _, err := ParseHash("df6f"); err == nil {
		t.Error("short hash accepted")
	}
	if _, err := ParseSPKI("NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A="); err != nil {
		t.Error(err)
	}
	if _, err := ParseSPKI("not base64"); err == nil {
		t.Error("bad spki accepted")
	}
	if _, err := ParseCRLs([]byte("garbage")); err == nil {
		t.Error("garbage CRL accepted")
	}
}
