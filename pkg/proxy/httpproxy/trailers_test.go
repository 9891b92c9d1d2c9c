package httpproxy_test

import (
	"io"
	"net/http"
	"testing"
)

// TestUnannouncedTrailersForwarded: trailers an upstream sends without
// announcing them in a Trailer header (as grpc-go sends grpc-status)
// reach the client, and so does an announced one.
func TestUnannouncedTrailersForwarded(t *testing.T) {
	web := newBackend(t, "web", func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		w.Write([]byte("body"))
		w.(http.Flusher).Flush()
		w.Header().Set("X-Announced", "a")
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	})
	m := newMesh(t, service("web", web)+vs("  - route: [{destination: {host: web}}]\n"))
	req, _ := http.NewRequest("GET", m.url+"/", nil)
	req.Host = "web:8080"
	resp, err := m.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("X-Announced") != "a" {
		t.Errorf("trailers %v, want Grpc-Status 0 and X-Announced a", resp.Trailer)
	}
}
