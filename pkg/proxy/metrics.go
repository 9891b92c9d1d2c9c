package proxy

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
)

// serveMetrics serves the standard metrics on their own address
// (--metrics-address), at /stats/prometheus as Istio's merged port 15090
// does; it returns the address bound, and stop shuts the server down.
func serveMetrics(addr string, m *istiometrics.Metrics) (bound string, stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis)
	return lis.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
