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
func inspect(raw net.Conn, l *dataplane.Listener, in *dataplane.MatchInput, c *Counters) (net.Conn, bool) {
	// A filter's filter_disabled matching the (restored) destination
	// port: it does not run on this connection.
	tlsi, httpi := l.Inspector, l.HTTPInspector
	if tlsi != nil && tlsi.Disabled.Match(in.DestinationPort) {
		tlsi = nil
	}
	if httpi != nil && httpi.Disabled.Match(in.DestinationPort) {
		httpi = nil
	}
	if tlsi == nil && httpi == nil {
		return raw, true
	}
	timeout, cont := time.Duration(0), false
	if tlsi != nil {
		timeout, cont = tlsi.Timeout, tlsi.ContinueOnTimeout
	} else {
		timeout, cont = httpi.Timeout, httpi.ContinueOnTimeout
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
		case errors.Is(err, httpinspector.ErrTimeout):
			c.PreCxTimeout.Add(1)
			conn = replay
			return cont
		case err != nil:
			return false
		}
		conn = replay
		switch proto {
		case httpinspector.HTTP10:
			c.HTTP10.Add(1)
		case httpinspector.HTTP11:
			c.HTTP11.Add(1)
		case httpinspector.H2C:
			c.HTTP2.Add(1)
		default:
			c.NotHTTP.Add(1)
			return true
		}
		in.ALPN = alpnOf[proto]
		return true
	}
	if httpi != nil && httpi.BeforeTLS && !sniffHTTP() {
		return nil, false
	}
	if tlsi != nil {
		res, replay, err := tlsinspector.InspectUntil(conn, tlsi, deadline)
		if err != nil {
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				c.PreCxTimeout.Add(1)
			}
			return nil, false
		}
		if !res.TLS && httpi == nil && !deadline.IsZero() && !time.Now().Before(deadline) {
			c.PreCxTimeout.Add(1) // continued on its timeout
		}
		conn = replay
		in.ServerName, in.Transport = res.ServerName, res.Transport()
		if res.TLS {
			in.ALPN = res.ALPN
		}
	}
	if httpi != nil && !httpi.BeforeTLS && !sniffHTTP() {
		return nil, false
	}
	return conn, true
}

// alpnOf holds the one-element ALPN lists the http_inspector sets, made
// once (no allocation per connection).
var alpnOf = map[string][]string{
	httpinspector.HTTP10: {httpinspector.HTTP10},
	httpinspector.HTTP11: {httpinspector.HTTP11},
	httpinspector.H2C:    {httpinspector.H2C},
}
