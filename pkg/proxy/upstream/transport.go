package upstream

import (
	"context"
	"net"
	"net/http"
	"time"
)

// TransportOptions are the connection settings a cluster's pool is built
// from; two clusters with equal options could share a pool.
type TransportOptions struct {
	ConnectTimeout time.Duration
	HTTP2          bool
}

// Transport is a cluster's connection pool: keep-alive HTTP/1.1
// connections, or multiplexed h2c connections, per host.
type Transport struct {
	Options TransportOptions
	RT      *http.Transport
}

// NewTransport builds a pool for opts.
func NewTransport(opts TransportOptions) *Transport {
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:          0, // no global cap; per host below
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       time.Hour,
		ExpectContinueTimeout: 0,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 0,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
	if opts.HTTP2 {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		t.Protocols = p
	}
	return &Transport{Options: opts, RT: t}
}

// Close drops the pool's idle connections.
func (t *Transport) Close() { t.RT.CloseIdleConnections() }
