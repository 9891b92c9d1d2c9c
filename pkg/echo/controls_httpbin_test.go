package echo

import (
	"net/http/httptest"
	"testing"
)

// httpbin's /status/<code> sets the status (the Istio samples' httpbin);
// an explicit status control wins; other paths are untouched.
func TestHTTPBinStatusPath(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/status/418", 418}, {"/status/200", 200}, {"/status/418?status=503", 503},
		{"/status/101", 0}, {"/status/abc", 0}, {"/status/4180", 0}, {"/statuses/418", 0},
	} {
		c, err := parseControls(httptest.NewRequest("GET", tc.target, nil))
		if err != nil || c.status != tc.want {
			t.Errorf("%s: status %d, %v; want %d", tc.target, c.status, err, tc.want)
		}
	}
}
