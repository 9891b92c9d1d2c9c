package echo

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names of the controls, as query parameters and as request headers.
const (
	StatusParam     = "status"
	DelayParam      = "delay"
	SizeParam       = "size"
	StatusHeader    = "X-Echo-Status"
	DelayHeader     = "X-Echo-Delay"
	SizeHeader      = "X-Echo-Size"
	SetHeaderHeader = "X-Echo-Set-Header"
)

// controls is what one request asked for.
type controls struct {
	status     int // 0: not asked
	delay      time.Duration
	size       int64
	hasSize    bool
	setHeaders string // raw X-Echo-Set-Header value
}

// parseControls reads the controls from the query and the headers; a query
// parameter wins over the header of the same control. The error is a
// one-line reason fit to send back to the client.
func parseControls(r *http.Request) (controls, error) {
	var c controls
	var query url.Values
	if r.URL != nil && r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	if v, from, ok := lookup(r, query, StatusParam, StatusHeader); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 100 || n > 599 {
			return c, fmt.Errorf("echo: invalid %s %q: want an HTTP status code from 100 to 599", from, v)
		}
		if n == http.StatusSwitchingProtocols {
			// A 101 without a real upgrade leaves the client hanging, and
			// HTTP/2 forbids it outright.
			return c, fmt.Errorf("echo: invalid %s %q: 101 Switching Protocols cannot be faked", from, v)
		}
		c.status = n
	} else if code, ok := httpbinStatus(r); ok {
		c.status = code
	}
	if v, from, ok := lookup(r, query, DelayParam, DelayHeader); ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			return c, fmt.Errorf("echo: invalid %s %q: want a non-negative Go duration such as 250ms or 1s", from, v)
		}
		c.delay = min(d, MaxDelay)
	}
	if v, from, ok := lookup(r, query, SizeParam, SizeHeader); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if (err != nil && !isRangeErr(err)) || n < 0 {
			return c, fmt.Errorf("echo: invalid %s %q: want a non-negative number of bytes", from, v)
		}
		c.size = min(n, MaxSizeBytes)
		c.hasSize = true
	}
	if vs := r.Header[SetHeaderHeader]; len(vs) > 0 {
		c.setHeaders = strings.Join(vs, ",")
	}
	return c, nil
}

// lookup finds a control in the query, then in the headers. from names
// where it was found, for error messages.
func lookup(r *http.Request, query url.Values, param, header string) (v, from string, ok bool) {
	if vs, found := query[param]; found && len(vs) > 0 {
		return vs[0], "query parameter " + param, true
	}
	if vs := r.Header[header]; len(vs) > 0 {
		return vs[0], "header " + header, true
	}
	return "", "", false
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// applySetHeaders adds the headers listed in an X-Echo-Set-Header value,
// "name:value,name2:value2", to h. The first value given for a name replaces
// whatever h held for it; further values for the same name are added.
// Entries without a colon or with an empty name are ignored.
func applySetHeaders(h http.Header, list string) {
	var seen []string
	for entry := range strings.SplitSeq(list, ",") {
		name, value, ok := strings.Cut(entry, ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		value = strings.TrimSpace(value)
		if slices.Contains(seen, name) {
			h[name] = append(h[name], value)
		} else {
			seen = append(seen, name)
			h[name] = []string{value}
		}
	}
}

// httpbinStatus reads httpbin's /status/<code> path (the Istio samples'
// httpbin answers /status/418 with 418), for a status from 200 to 599;
// the echo still reports the request.
func httpbinStatus(r *http.Request) (int, bool) {
	code, ok := strings.CutPrefix(r.URL.Path, "/status/")
	if !ok || len(code) != 3 {
		return 0, false
	}
	n, err := strconv.Atoi(code)
	if err != nil || n < 200 || n > 599 {
		return 0, false
	}
	return n, true
}
