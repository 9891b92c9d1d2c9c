package telemetryexpr

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/cel-go/interpreter"
)

// statusText holds the decimal form of every HTTP status, so reading
// response.code allocates nothing.
var statusText = func() []string {
	s := make([]string, 600)
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func codeString(c int) string {
	if c >= 0 && c < len(statusText) {
		return statusText[c]
	}
	return strconv.Itoa(c)
}

// protocol is Envoy's request.protocol: HTTP/1.0, HTTP/1.1, HTTP/2.
func protocol(p string) string {
	if p == "HTTP/2.0" {
		return "HTTP/2"
	}
	return p
}

// fieldAccessor reads root.field as Envoy's attributes define it
// (envoyproxy.io docs intro/arch_overview/advanced/attributes); false
// when absent.
func fieldAccessor(root, field string) func(*Attrs) (string, bool) {
	switch root {
	case "request":
		return requestAccessor(field)
	case "response":
		switch field {
		case "code":
			return func(a *Attrs) (string, bool) { return codeString(a.ResponseCode), a.Request != nil }
		case "code_details":
			return func(a *Attrs) (string, bool) { return a.ResponseDetails, a.ResponseDetails != "" }
		case "grpc_status":
			return func(a *Attrs) (string, bool) { return a.GRPCStatus, a.GRPCStatus != "" }
		}
	case "source", "destination":
		return addrAccessor(root, field)
	case "connection":
		switch field {
		case "mtls":
			return func(a *Attrs) (string, bool) { return strconv.FormatBool(a.MTLS), true }
		case "requested_server_name":
			return func(a *Attrs) (string, bool) { return a.SNI, a.SNI != "" }
		}
	case "upstream_peer":
		return func(a *Attrs) (string, bool) { return a.Upstream.field(field) }
	case "downstream_peer":
		return func(a *Attrs) (string, bool) { return a.Downstream.field(field) }
	}
	return nil
}

func requestAccessor(field string) func(*Attrs) (string, bool) {
	var get func(a *Attrs) string
	switch field {
	case "host":
		get = func(a *Attrs) string { return a.Request.Host }
	case "method":
		get = func(a *Attrs) string { return a.Request.Method }
	case "path":
		get = func(a *Attrs) string {
			if u := a.Request.RequestURI; u != "" && u[0] == '/' {
				return a.Request.RequestURI
			}
			return a.Request.URL.RequestURI()
		}
	case "url_path":
		get = func(a *Attrs) string { return a.Request.URL.Path }
	case "query":
		get = func(a *Attrs) string { return a.Request.URL.RawQuery }
	case "scheme":
		get = func(a *Attrs) string {
			if a.Request.TLS != nil {
				return "https"
			}
			return "http"
		}
	case "protocol":
		get = func(a *Attrs) string { return protocol(a.Request.Proto) }
	case "id", "useragent", "referer":
		key := map[string]string{"id": "X-Request-Id", "useragent": "User-Agent", "referer": "Referer"}[field]
		return func(a *Attrs) (string, bool) {
			if a.Request == nil {
				return "", false
			}
			return first(a.Request.Header[key])
		}
	default:
		return nil
	}
	return func(a *Attrs) (string, bool) {
		if a.Request == nil {
			return "", false
		}
		v := get(a)
		return v, v != ""
	}
}

func addrAccessor(root, field string) func(*Attrs) (string, bool) {
	pick := func(a *Attrs) netip.AddrPort {
		if root == "source" {
			return a.Source
		}
		return a.Destination
	}
	switch field {
	case "address":
		return func(a *Attrs) (string, bool) {
			ap := pick(a)
			return ap.String(), ap.IsValid()
		}
	case "port":
		return func(a *Attrs) (string, bool) {
			ap := pick(a)
			return strconv.Itoa(int(ap.Port())), ap.IsValid()
		}
	}
	return nil
}

// activation gives a cel-go program the attributes of one request, each
// root built as a map when the program first reads it; an absent
// attribute is left out of its map (has() is false, reading it fails and
// the value is Unknown).
type activation struct {
	a *Attrs
}

func (v *activation) ResolveName(name string) (any, bool) {
	if name == "filter_state" {
		m := map[string]any{}
		for _, p := range []string{"upstream_peer", "downstream_peer"} {
			if pm, ok := v.ResolveName(p); ok {
				m[p] = pm
			}
		}
		return m, true
	}
	fields, ok := attributes[name]
	if !ok {
		return nil, false
	}
	m := map[string]any{}
	for f := range fields {
		if f == "headers" {
			if h, ok := v.headers(name); ok {
				m[f] = h
			}
			continue
		}
		if f == "labels" {
			if p := v.peer(name); p != nil {
				labels := make(map[string]any, len(p.Labels))
				for k, lv := range p.Labels {
					labels[k] = map[string]any{"value": lv}
				}
				m[f] = labels
			}
			continue
		}
		get := fieldAccessor(name, f)
		if get == nil {
			continue
		}
		s, ok := get(v.a)
		if !ok {
			continue
		}
		switch {
		case f == "port" || (name == "response" && f == "code"):
			n, _ := strconv.ParseInt(s, 10, 64)
			m[f] = n
		case f == "mtls":
			m[f] = s == "true"
		default:
			m[f] = s
		}
	}
	return m, true
}

func (v *activation) peer(root string) *Peer {
	if root == "upstream_peer" {
		return v.a.Upstream
	}
	return v.a.Downstream
}

func (v *activation) headers(root string) (map[string]string, bool) {
	h := v.a.ResponseHeader
	if root == "request" {
		if v.a.Request == nil {
			return nil, false
		}
		h = v.a.Request.Header
	}
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			out[strings.ToLower(k)] = vs[0]
		}
	}
	return out, true
}

func (v *activation) Parent() interpreter.Activation { return nil }
