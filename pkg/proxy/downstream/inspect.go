package downstream

import (
	"errors"
	"net"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpinspector"
	"github.com/sluice-mesh/sluice/pkg/proxy/tlsinspector"
)

// inspect runs the listener's listener filters on a new connection, in
// their configured order, as Envoy's ActiveTcpSocket does: one
// listener_filters_timeout for all of them (on expiry the connection is
// closed, or with continue_on_listener_filters_timeout served with what
// was detected so far); the tls_inspector fills the transport protocol,
// SNI and ALPN; the http_inspector, on a connection no inspector found
// TLS on, the application protocol it sniffed ("http/1.1", "http/1.0",
// "h2c"). It returns the connection replaying what was read, or ok false
// when the connection must be closed.
func inspect(raw net.Conn, l *dataplane.Listener, in *dataplane.MatchInput) (net.Conn, bool) {
	if l.Inspector == nil && l.HTTPInspector == nil {
		return raw, true
	}
	timeout, cont := time.Duration(0), false
	if l.Inspector != nil {
		timeout, cont = l.Inspector.Timeout, l.Inspector.ContinueOnTimeout
	} else {
		timeout, cont = l.HTTPInspector.Timeout, l.HTTPInspector.ContinueOnTimeout
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	conn := raw
	sniffHTTP := func() bool {
		if in.Transport == dataplane.TransportTLS {
			return true // Envoy's http_inspector skips a TLS connection
		}
		proto, replay, err := httpinspector.Inspect(conn, deadline)
		switch {
		case errors.Is(err, httpinspector.ErrTimeout) && cont:
			conn = replay
			return true
		case err != nil:
			return false
		}
		conn = replay
		if proto != "" {
			in.ALPN = []string{proto}
		}
		return true
	}
	if l.HTTPInspector != nil && l.HTTPInspector.BeforeTLS && !sniffHTTP() {
		return nil, false
	}
	if l.Inspector != nil {
		res, replay, err := tlsinspector.InspectUntil(conn, l.Inspector, deadline)
		if err != nil {
			return nil, false
		}
		conn = replay
		in.ServerName, in.Transport = res.ServerName, res.Transport()
		if res.TLS {
			in.ALPN = res.ALPN
		}
	}
	if l.HTTPInspector != nil && !l.HTTPInspector.BeforeTLS && !sniffHTTP() {
		return nil, false
	}
	return conn, true
}
