package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

func policy(t *testing.T) *Policy {
	t.Helper()
	a, err := anypb.New(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcher.StringMatcher{{MatchPattern: &matcher.StringMatcher_Exact{Exact: "https://app"}}},
		AllowMethods:           "GET,POST", AllowHeaders: "*", ExposeHeaders: "x-e", MaxAge: "60",
		AllowCredentials: wrapperspb.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := CompilePerRoute([]*anypb.Any{a, nil}, nil)
	if err != nil || p == nil {
		t.Fatalf("%v %v", p, err)
	}
	return p
}

// TestDecodePreflight: a preflight from an allowed origin is answered by
// the filter with the allow-* headers; one from another origin goes on
// (forward_not_matching_preflights); both are counted.
func TestDecodePreflight(t *testing.T) {
	p := policy(t)
	var st Stats
	var info httpfilter.RequestInfo
	r := httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "https://app")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "x-a")
	w := httptest.NewRecorder()
	if _, answered := p.Decode(w, r, &st, &info); !answered {
		t.Fatal("a preflight from an allowed origin must be answered")
	}
	h := w.Header()
	if w.Code != 200 || h.Get("Access-Control-Allow-Origin") != "https://app" || h.Get("Access-Control-Allow-Methods") != "GET,POST" ||
		h.Get("Access-Control-Allow-Headers") != "x-a" || h.Get("Access-Control-Max-Age") != "60" || h.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("preflight answer %d %v", w.Code, h)
	}
	r.Header.Set("Origin", "https://evil")
	if _, answered := p.Decode(httptest.NewRecorder(), r, &st, &info); answered {
		t.Error("a preflight from another origin must be forwarded")
	}
	if st.OriginValid.Load() != 1 || st.OriginInvalid.Load() != 1 {
		t.Errorf("counters valid %d invalid %d", st.OriginValid.Load(), st.OriginInvalid.Load())
	}
}

// TestDecodeMarksAnswer: an ordinary request from an allowed origin goes
// on through a writer that adds the CORS headers to whatever answers it.
func TestDecodeMarksAnswer(t *testing.T) {
	p := policy(t)
	var st Stats
	var info httpfilter.RequestInfo
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Origin", "https://app")
	rec := httptest.NewRecorder()
	w, answered := p.Decode(rec, r, &st, &info)
	if answered {
		t.Fatal("an ordinary request must go on")
	}
	w.Header().Set("Access-Control-Allow-Origin", "upstream")
	w.WriteHeader(http.StatusTeapot)
	if h := rec.Header(); h.Get("Access-Control-Allow-Origin") != "https://app" || h.Get("Access-Control-Expose-Headers") != "x-e" {
		t.Errorf("answer headers %v", h)
	}
}
