package proxy

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// TestClientLeavingEndsUpstreamRequest: a client that goes away while its
// request waits on the upstream ends that upstream request (the sidecar
// closes its connection, as Envoy resets the upstream stream), through
// the request's context and the upstream connection's interrupt.
func TestClientLeavingEndsUpstreamRequest(t *testing.T) {
	started, ended := make(chan struct{}, 1), make(chan struct{}, 1)
	outbound := sidecarTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			ended <- struct{}{}
		case <-time.After(30 * time.Second):
		}
	}))
	c, err := net.Dial("tcp", outbound)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("GET /hold HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the backend")
	}
	c.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request outlived its client by 10 s")
	}
}
