package router

// Header edits on the forward path (request_headers_to_add/remove,
// response_headers_to_add/remove of the route, its virtual host and a
// weighted cluster), applied by the router as Envoy's RouteEntry
// finalizeRequestHeaders / finalizeResponseHeaders do.

import (
	"fmt"
	"net/http"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// HeaderOps are compiled header edits, applied in Envoy's order: removals,
// then overwrites and appends in configuration order.
type HeaderOps struct {
	Remove []string
	Edits  []HeaderEdit
}

// HeaderEdit is one header to write.
type HeaderEdit struct {
	Name  string // canonical form
	Value string
	// Mode: 'o' overwrite or add, 'x' overwrite only if present, 'a' append
	// or add, 'i' add only if absent.
	Mode byte
}

// Empty reports whether there is nothing to do.
func (h *HeaderOps) Empty() bool { return len(h.Remove) == 0 && len(h.Edits) == 0 }

func compileHeaderOps(vhAdd []*core.HeaderValueOption, vhRemove []string, add []*core.HeaderValueOption, remove []string) (HeaderOps, error) {
	var ops HeaderOps
	for _, r := range append(append([]string(nil), vhRemove...), remove...) {
		ops.Remove = append(ops.Remove, http.CanonicalHeaderKey(r))
	}
	// Route-level edits come after virtual-host ones so they win on overwrite.
	for _, list := range [][]*core.HeaderValueOption{vhAdd, add} {
		for _, o := range list {
			e, err := compileEdit(o)
			if err != nil {
				return ops, err
			}
			// An empty value is not written unless keep_empty_value, as
			// Envoy's HeaderParser::evaluateHeaders
			// (source/common/router/header_parser.cc) skips it.
			if e.Value == "" && !o.KeepEmptyValue {
				continue
			}
			ops.Edits = append(ops.Edits, e)
		}
	}
	return ops, nil
}

func compileEdit(o *core.HeaderValueOption) (HeaderEdit, error) {
	h := o.GetHeader()
	if h == nil || h.Key == "" {
		return HeaderEdit{}, fmt.Errorf("header edit without a name")
	}
	if strings.HasPrefix(h.Key, ":") {
		return HeaderEdit{}, fmt.Errorf("header edit of pseudo-header %q is not supported", h.Key)
	}
	value, err := literalValue(headerValue(h))
	if err != nil {
		return HeaderEdit{}, fmt.Errorf("header edit %q: %w", h.Key, err)
	}
	e := HeaderEdit{Name: http.CanonicalHeaderKey(h.Key), Value: value}
	switch o.AppendAction {
	case core.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		e.Mode = 'a'
	case core.HeaderValueOption_ADD_IF_ABSENT:
		e.Mode = 'i'
	case core.HeaderValueOption_OVERWRITE_IF_EXISTS:
		e.Mode = 'x'
	case core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		e.Mode = 'o'
	}
	if o.Append != nil { // deprecated field wins when set, as in Envoy
		if o.Append.Value {
			e.Mode = 'a'
		} else {
			e.Mode = 'o'
		}
	}
	return e, nil
}

// headerValue is a header edit's value: value, else raw_value.
func headerValue(h *core.HeaderValue) string {
	if h.GetValue() == "" && len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}

// literalValue reads a header edit's value as Envoy does, where "%" starts
// a substitution command (%DOWNSTREAM_REMOTE_ADDRESS%, %REQ(x)%, ...) and
// "%%" is a literal "%" (Envoy's custom request/response headers,
// https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_conn_man/headers#custom-request-response-headers).
// The proxy evaluates no commands: a value with one is NACKed rather
// than sent as written.
func literalValue(v string) (string, error) {
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		return "", fmt.Errorf("value %q: substitution commands (%%...%%) are not supported; write a literal %% as %%%%", v)
	}
	return b.String(), nil
}

// Apply edits h.
func (ops *HeaderOps) Apply(h http.Header) {
	for _, name := range ops.Remove {
		delete(h, name)
	}
	for _, e := range ops.Edits {
		switch e.Mode {
		case 'a':
			h[e.Name] = append(h[e.Name], e.Value)
		case 'i':
			if _, ok := h[e.Name]; !ok {
				h[e.Name] = []string{e.Value}
			}
		case 'x':
			if _, ok := h[e.Name]; ok {
				h[e.Name] = []string{e.Value}
			}
		default:
			h[e.Name] = []string{e.Value}
		}
	}
}
