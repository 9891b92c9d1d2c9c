package serverconn

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Date is the Date header's value, formatted once a second.
func Date() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.text
	}
	d := &cachedDate{sec: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	sec  int64
	text string
}

var dateCache atomic.Pointer[cachedDate]

// DefaultMaxHeaderBytes bounds a request's head (HTTP/1.1) or decoded
// header list (HTTP/2): Envoy's default max_request_headers_kb, 60 KiB.
const DefaultMaxHeaderBytes = 60 << 10
