package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter is a backend that counts the connections it accepts and
// answers with the protocol the request came in.
func connCounter(t *testing.T, h2 bool) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if h2 {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		srv.Config.Protocols = p
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func roundTrip(t *testing.T, tr *Transport, url string, downstreamH2 bool) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := tr.RoundTrip(req, downstreamH2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestMaxRequestsPerConnection(t *testing.T) {
	for _, tc := range []struct {
		max       uint32
		wantConns int64
	}{{0, 1}, {1, 6}, {2, 3}, {3, 2}} {
		srv, conns := connCounter(t, false)
		st := &Stats{}
		tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, MaxRequestsPerConnection: tc.max}, st)
		for i := 0; i < 6; i++ {
			roundTrip(t, tr, srv.URL, false)
		}
		if got := conns.Load(); got != tc.wantConns {
			t.Errorf("max_requests_per_connection %d: 6 sequential requests used %d connections, want %d", tc.max, got, tc.wantConns)
		}
		if st.CxTotal.Load() != uint64(tc.wantConns) {
			t.Errorf("max %d: upstream_cx_total %d, want %d", tc.max, st.CxTotal.Load(), tc.wantConns)
		}
		tr.Close()
	}
}

func TestMaxConnectionDuration(t *testing.T) {
	srv, conns := connCounter(t, false)
	tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, MaxConnectionDuration: time.Nanosecond}, nil)
	for i := 0; i < 3; i++ {
		roundTrip(t, tr, srv.URL, false)
	}
	// Every connection is past its duration when its next request takes
	// it, so that request closes it: one per request.
	if got := conns.Load(); got != 3 {
		t.Errorf("connections %d, want 3", got)
	}
}

func TestUseDownstreamProtocol(t *testing.T) {
	srv, _ := connCounter(t, true)
	tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, UseDownstreamProtocol: true}, nil)
	if got := roundTrip(t, tr, srv.URL, false); got != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 downstream went upstream as %s", got)
	}
	if got := roundTrip(t, tr, srv.URL, true); got != "HTTP/2.0" {
		t.Errorf("HTTP/2 downstream went upstream as %s", got)
	}
}

func TestConnectionsCountedPerHost(t *testing.T) {
	srv, _ := connCounter(t, false)
	h := &Host{Address: srv.Listener.Addr().String()}
	st := &Stats{}
	tr := NewTransport(TransportOptions{ConnectTimeout: time.Second}, st)
	tr.SetHosts([]*Host{h})
	roundTrip(t, tr, srv.URL, false)
	if h.CxActive.Load() != 1 || h.CxTotal.Load() != 1 || st.CxActive.Load() != 1 {
		t.Errorf("host cx_active %d cx_total %d, cluster cx_active %d, want 1, 1, 1", h.CxActive.Load(), h.CxTotal.Load(), st.CxActive.Load())
	}
	tr.Close()
	deadline := time.Now().Add(5 * time.Second)
	for h.CxActive.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if h.CxActive.Load() != 0 || st.CxActive.Load() != 0 {
		t.Errorf("after closing the pool: host cx_active %d, cluster %d, want 0", h.CxActive.Load(), st.CxActive.Load())
	}
}

// TestH2OverTLSByALPN: an HTTP/2 cluster originating TLS speaks h2 to a
// server that negotiates it by ALPN, and HTTP/1.1 to one that does not.
func TestH2OverTLSByALPN(t *testing.T) {
	for _, tc := range []struct {
		name      string
		alpn      string
		serverH2  bool
		wantMajor int
	}{
		{"istio mutual h2 alpn", "istio,h2", true, 2},
		{"no alpn configured: h2 by default", "", true, 2},
		{"server without h2 (Istio's ALPNHttp)", "h2,http/1.1", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var major atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				major.Store(int64(r.ProtoMajor))
				io.WriteString(w, r.Proto)
			}))
			srv.EnableHTTP2 = tc.serverH2
			srv.StartTLS()
			defer srv.Close()
			tr := NewTransport(TransportOptions{ConnectTimeout: time.Second, HTTP2: true,
				TLS: TLSOptions{Enabled: true, InsecureSkipVerify: true, ALPN: tc.alpn}}, nil)
			defer tr.Close()
			req, _ := http.NewRequest("GET", "http://"+srv.Listener.Addr().String()+"/", nil)
			resp, err := tr.RoundTrip(req, false)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got := major.Load(); got != int64(tc.wantMajor) || resp.ProtoMajor != tc.wantMajor {
				t.Errorf("server saw HTTP/%d, client got HTTP/%d, want %d", got, resp.ProtoMajor, tc.wantMajor)
			}
		})
	}
}
