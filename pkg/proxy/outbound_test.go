package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOutboundHeadersPerRequest: requests one after another on the same
// connections (client to sidecar, sidecar to backend, whose header maps
// the sidecar reuses) each reach the backend with their own headers only.
func TestOutboundHeadersPerRequest(t *testing.T) {
	outbound := sidecarTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for k := range r.Header {
			if strings.HasPrefix(k, "X-Test-") {
				names = append(names, k+"="+r.Header.Get(k))
			}
		}
		fmt.Fprint(w, len(names), " ", strings.Join(names, ","))
	}))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	for i, n := range []int{3, 0, 40, 1, 0} {
		req, _ := http.NewRequest("GET", "http://"+outbound+"/", nil)
		req.Host = "reviews:9080"
		for j := range n {
			req.Header.Set(fmt.Sprintf("X-Test-%d", j), fmt.Sprint(i))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(b)
		if !strings.HasPrefix(got, fmt.Sprint(n, " ")) || n > 0 && strings.Count(got, fmt.Sprintf("=%d", i)) != n {
			t.Errorf("request %d with %d X-Test- headers: the backend saw %q", i, n, got)
		}
	}
}
