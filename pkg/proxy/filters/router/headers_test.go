package router

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

func TestHeaderOps(t *testing.T) {
	h := http.Header{"X-Keep": {"1"}, "X-Drop": {"1"}, "X-Over": {"old"}, "X-App": {"a"}}
	ops := HeaderOps{Remove: []string{"X-Drop"}, Edits: []HeaderEdit{
		{Name: "X-Over", Value: "new", Mode: 'o'},
		{Name: "X-App", Value: "b", Mode: 'a'},
		{Name: "X-Keep", Value: "no", Mode: 'i'},
		{Name: "X-Missing", Value: "no", Mode: 'x'},
	}}
	ops.Apply(h)
	if h.Get("X-Drop") != "" || h.Get("X-Over") != "new" || len(h["X-App"]) != 2 || h.Get("X-Keep") != "1" || h.Get("X-Missing") != "" {
		t.Errorf("header ops applied wrongly: %v", h)
	}
}

// TestHeaderOpsEmptyValue: an edit with an empty value is dropped unless
// keep_empty_value, as Envoy's HeaderParser does.
func TestHeaderOpsEmptyValue(t *testing.T) {
	hv := func(k, v string, keep bool) *core.HeaderValueOption {
		return &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: v}, KeepEmptyValue: keep,
			AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	ops, err := compileHeaderOps(nil, nil, []*core.HeaderValueOption{hv("x-empty", "", false), hv("x-kept", "", true), hv("x-set", "v", false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Empty": {"client"}}
	ops.Apply(h)
	if got := h.Values("X-Empty"); len(got) != 1 || got[0] != "client" {
		t.Errorf("x-empty = %q, want the client's value untouched", got)
	}
	if got, ok := h["X-Kept"]; !ok || len(got) != 1 || got[0] != "" {
		t.Errorf("x-kept = %q (present %v), want one empty value", got, ok)
	}
	if h.Get("X-Set") != "v" {
		t.Errorf("x-set = %q", h.Get("X-Set"))
	}
	if _, err := compileHeaderOps(nil, nil, []*core.HeaderValueOption{{Header: &core.HeaderValue{}}}, nil); err == nil {
		t.Error("an edit without a name is accepted")
	}
}

// TestHeaderOpsPercent: "%%" is a literal "%", as in Envoy's header
// values; a substitution command, which the proxy does not evaluate, is
// NACKed naming the header.
func TestHeaderOpsPercent(t *testing.T) {
	hv := func(v string) []*core.HeaderValueOption {
		return []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "x-p", Value: v}}}
	}
	ops, err := compileHeaderOps(nil, nil, hv("100%% sure"), nil)
	if err != nil || len(ops.Edits) != 1 || ops.Edits[0].Value != "100% sure" {
		t.Errorf("edits = %+v, err = %v; want one with value %q", ops.Edits, err, "100% sure")
	}
	for _, v := range []string{"%DOWNSTREAM_REMOTE_ADDRESS%", "50%", "%"} {
		if _, err := compileHeaderOps(nil, nil, hv(v), nil); err == nil || !strings.Contains(err.Error(), `"x-p"`) {
			t.Errorf("value %q: err = %v, want a NACK naming the header", v, err)
		}
	}
}

// TestCloneRequestHeader: the upstream copy drops hop-by-hop headers and
// those the Connection header names (any case, comma separated), keeps
// "TE: trailers" only, and leaves the downstream headers as they were.
func TestCloneRequestHeader(t *testing.T) {
	h := http.Header{
		"Connection":        {"keep-alive, x-Conn-Only", "Upgrade"},
		"X-Conn-Only":       {"1"},
		"Keep-Alive":        {"timeout=5"},
		"Proxy-Connection":  {"keep-alive"},
		"Te":                {"gzip, Trailers"},
		"Transfer-Encoding": {"chunked"},
		"Upgrade":           {"websocket"},
		"Trailer":           {"X-T"},
		"Accept":            {"*/*"},
		"X-Request-Id":      {"abc"},
	}
	before := h.Clone()
	got := cloneRequestHeader(h, 2, false)
	want := http.Header{"Accept": {"*/*"}, "X-Request-Id": {"abc"}, "Te": {"trailers"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cloneRequestHeader = %v, want %v", got, want)
	}
	if !reflect.DeepEqual(h, before) {
		t.Errorf("the downstream headers changed: %v", h)
	}
	if got := cloneRequestHeader(http.Header{"Te": {"deflate"}, "A": {"1"}}, 0, false); !reflect.DeepEqual(got, http.Header{"A": {"1"}}) {
		t.Errorf("TE without trailers: %v", got)
	}
}
