package conformance

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// identity is who served a response: from the echo JSON body, or from the
// X-Echo-* headers every echo answer carries (a 204 has no body).
type identity struct {
	service, version, pod, namespace string
	found                            bool
}

func identityOf(r *testenv.Response) identity {
	if r == nil {
		return identity{}
	}
	if e := r.Echo; e != nil {
		return identity{e.Service, e.Version, e.Pod, e.Namespace, true}
	}
	if s := r.Header.Get("X-Echo-Service"); s != "" {
		return identity{s, r.Header.Get("X-Echo-Version"), r.Header.Get("X-Echo-Pod"), "", true}
	}
	return identity{}
}

// connectError is a request that failed before any HTTP exchange, with
// the exit code curl gives that failure.
type connectError struct {
	code int
	err  error
}

// curl's exit codes for failures to connect.
const (
	curlConnectFailed = 7  // the TCP connection was refused or failed
	curlTimeout       = 28 // the operation timed out
	curlTLSConnect    = 35 // the TLS handshake failed
	curlPeerCert      = 60 // the server's certificate was not trusted
)

func (e *connectError) Error() string {
	return fmt.Sprintf("%v (curl would exit with %d)", e.err, e.code)
}

func (e *connectError) Unwrap() error { return e.err }

// evalResponse returns how one response falls short of ch.Expect (without
// fractions, which apply to all responses together).
func evalResponse(ch *Check, r *testenv.Response, err error) []string {
	e := ch.Expect
	if e.ConnectionError || e.ClientExitCode != 0 {
		return evalConnectError(e, r, err)
	}
	if err != nil {
		return []string{"request failed: " + err.Error()}
	}
	var p []string
	bad := func(f string, a ...any) { p = append(p, fmt.Sprintf(f, a...)) }
	if r.Proto == "tcp" {
		// A TCP exchange has no status or echo JSON; only its bytes count.
		if e.ResponsePrefix != nil && !strings.HasPrefix(string(r.Body)+"\n", *e.ResponsePrefix) {
			bad("answer %q does not start with %q", r.Body, *e.ResponsePrefix)
		}
		return p
	}
	if !e.StatusAny && len(e.Status) > 0 && !slices.Contains(e.Status, r.Status) {
		bad("status %d, want one of %v", r.Status, e.Status)
	}
	id := identityOf(r)
	// Upstream checks identity and what the backend saw only on 200/204;
	// status_any instead requires that the named backend got the request.
	identityChecked := r.Status == 200 || r.Status == 204 || e.StatusAny
	if b := e.Backend; b != nil && identityChecked {
		switch {
		case !id.found:
			bad("no backend served the request, want %s", describeBackend(b))
		case b.Service != "" && id.service != b.Service,
			b.Version != "" && id.version != b.Version,
			b.ServicePrefix != "" && !strings.HasPrefix(id.pod, b.ServicePrefix),
			b.Namespace != "" && id.namespace != b.Namespace:
			bad("served by service %q version %q pod %q namespace %q, want %s",
				id.service, id.version, id.pod, id.namespace, describeBackend(b))
		}
	}
	if s := e.BackendService; s != "" && identityChecked && id.service != s {
		bad("served by service %q, want %q", id.service, s)
	}
	if e.ReachedBackend != nil && !*e.ReachedBackend && r.Served() {
		bad("the backend %s/%s received the request, want the proxy to answer", id.service, id.version)
	}
	if e.AnsweredByProxy && r.Served() {
		bad("the backend %s/%s answered, want the proxy to answer", id.service, id.version)
	}
	if s := e.BackendSaw; s != nil && identityChecked {
		p = append(p, evalBackendSaw(s, r)...)
	}
	if e.BodyPrefix != nil && !strings.HasPrefix(string(r.Body), *e.BodyPrefix) {
		body := string(r.Body)
		if len(body) > 200 {
			body = body[:200] + "..."
		}
		bad("body %q does not start with %q", body, *e.BodyPrefix)
	}
	p = append(p, evalResponseHeaders(e, r)...)
	if e.Redirect != nil {
		p = append(p, evalRedirect(ch, r)...)
	}
	if e.LatencyMin != "" {
		if d, err := time.ParseDuration(e.LatencyMin); err != nil {
			bad("latency_min %q: %v", e.LatencyMin, err)
		} else if r.Latency < d {
			bad("answered after %v, want at least %v", r.Latency.Round(time.Millisecond), d)
		}
	}
	if e.LatencyMax != "" {
		if d, err := time.ParseDuration(e.LatencyMax); err != nil {
			bad("latency_max %q: %v", e.LatencyMax, err)
		} else if r.Latency >= d {
			bad("answered after %v, want less than %v", r.Latency.Round(time.Millisecond), d)
		}
	}
	return p
}

// evalConnectError judges expect.connection_error and client_exit_code:
// the request must have failed to connect, in the way curl's exit code
// names when one is given.
func evalConnectError(e Expect, r *testenv.Response, err error) []string {
	var ce *connectError
	switch {
	case err == nil:
		return []string{fmt.Sprintf("got a response (%s), want a connection error", r)}
	case !errors.As(err, &ce):
		return []string{fmt.Sprintf("request failed after connecting (%v), want a connection error", err)}
	case e.ClientExitCode != 0 && ce.code != e.ClientExitCode:
		return []string{fmt.Sprintf("connection failed as curl exit code %d (%v), want %d", ce.code, ce.err, e.ClientExitCode)}
	}
	return nil
}

func describeBackend(b *Backend) string {
	var parts []string
	for _, kv := range [][2]string{{"service", b.Service}, {"version", b.Version},
		{"pod prefix", b.ServicePrefix}, {"namespace", b.Namespace}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return strings.Join(parts, ", ")
}

// sawHeader returns a request header as the backend saw it, values joined
// by ",", with the name compared case-insensitively.
func sawHeader(r *testenv.Response, name string) (string, bool) {
	for k, v := range r.Echo.Request.Headers {
		if strings.EqualFold(k, name) {
			return strings.Join(v, ","), true
		}
	}
	// Go's server keeps Host out of the header map.
	if strings.EqualFold(name, "host") {
		return r.Echo.Request.Host, true
	}
	return "", false
}

func evalBackendSaw(s *BackendSaw, r *testenv.Response) []string {
	if r.Echo == nil {
		return []string{"no echo body to show what the backend received"}
	}
	var p []string
	got := r.Echo.Request
	if s.Path != nil && got.Path != *s.Path {
		p = append(p, fmt.Sprintf("backend saw path %q, want %q", got.Path, *s.Path))
	}
	if s.Host != nil && got.Host != *s.Host {
		p = append(p, fmt.Sprintf("backend saw host %q, want %q", got.Host, *s.Host))
	}
	if s.Method != "" && got.Method != s.Method {
		p = append(p, fmt.Sprintf("backend saw method %q, want %q", got.Method, s.Method))
	}
	for _, name := range slices.Sorted(maps.Keys(s.Headers)) {
		v, ok := sawHeader(r, name)
		if !ok {
			p = append(p, fmt.Sprintf("backend did not see header %s, want %q", name, s.Headers[name]))
		} else if v != s.Headers[name] {
			p = append(p, fmt.Sprintf("backend saw %s: %q, want %q", name, v, s.Headers[name]))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.HeadersContain)) {
		v, ok := sawHeader(r, name)
		for _, part := range s.HeadersContain[name] {
			if !ok {
				p = append(p, fmt.Sprintf("backend did not see header %s, want one containing %q", name, part))
				break
			}
			if !strings.Contains(v, part) {
				p = append(p, fmt.Sprintf("backend saw %s: %q, want it to contain %q", name, v, part))
			}
		}
	}
	for _, name := range s.AbsentHeaders {
		if v, ok := sawHeader(r, name); ok {
			p = append(p, fmt.Sprintf("backend saw %s: %q, want it absent", name, v))
		}
	}
	return p
}

func evalResponseHeaders(e Expect, r *testenv.Response) []string {
	norm := func(s string) string {
		if e.ResponseHeaderCompare == "ignore_whitespace" {
			return strings.Join(strings.Fields(s), "")
		}
		return s
	}
	get := func(name string) (string, bool) {
		v := r.Header.Values(name)
		return strings.Join(v, ","), len(v) > 0
	}
	var p []string
	for _, name := range slices.Sorted(maps.Keys(e.ResponseHeaders)) {
		want := e.ResponseHeaders[name]
		if v, ok := get(name); !ok || norm(v) != norm(want) {
			p = append(p, fmt.Sprintf("response header %s: %q (present %v), want %q", name, v, ok, want))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(e.ResponseHeadersOneOf)) {
		v, _ := get(name)
		if !slices.ContainsFunc(e.ResponseHeadersOneOf[name], func(w string) bool { return norm(w) == norm(v) }) {
			p = append(p, fmt.Sprintf("response header %s: %q, want one of %q", name, v, e.ResponseHeadersOneOf[name]))
		}
	}
	for _, name := range e.ResponseAbsentHeaders {
		if v, ok := get(name); ok {
			p = append(p, fmt.Sprintf("response header %s: %q, want it absent", name, v))
		}
	}
	return p
}

var defaultPorts = map[string]string{"http": "80", "https": "443"}

func evalRedirect(ch *Check, r *testenv.Response) []string {
	want := ch.Expect.Redirect
	if r.Status < 300 || r.Status > 399 {
		return []string{fmt.Sprintf("status %d is not a redirect", r.Status)}
	}
	loc := r.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil {
		return []string{fmt.Sprintf("Location %q: %v", loc, err)}
	}
	var p []string
	bad := func(what, got, want string) {
		p = append(p, fmt.Sprintf("Location %q: %s %q, want %q", loc, what, got, want))
	}
	if want.Scheme != "" && u.Scheme != want.Scheme {
		bad("scheme", u.Scheme, want.Scheme)
	}
	if want.Host != nil && u.Hostname() != *want.Host {
		bad("host", u.Hostname(), *want.Host)
	}
	if v, present := rawField(ch.Raw, "expect", "redirect", "port"); present {
		if v == nil {
			if port := u.Port(); port != "" && port != defaultPorts[u.Scheme] {
				bad("port", port, "absent or the scheme's default")
			}
		} else if u.Port() != fmt.Sprint(*want.Port) {
			bad("port", u.Port(), fmt.Sprint(*want.Port))
		}
	}
	if want.Path != "" && u.Path != want.Path {
		bad("path", u.Path, want.Path)
	}
	return p
}

// evalFractions checks the share of responses under each key against its
// [min, max] range.
func evalFractions(want map[string][2]float64, counts map[string]int, n int) []string {
	const eps = 1e-9
	var p []string
	for _, key := range slices.Sorted(maps.Keys(want)) {
		r := want[key]
		got := float64(counts[key]) / float64(n)
		if got < r[0]-eps || got > r[1]+eps {
			p = append(p, fmt.Sprintf("fraction %q = %.3f (%d of %d), want within [%.2f, %.2f]; all counts %v",
				key, got, counts[key], n, r[0], r[1], counts))
		}
	}
	return p
}

// evalLoad returns how the status codes of a load run (code -> count; -1
// counts requests that got no response) fall short of expect.status_set
// and expect.min_count.
func evalLoad(e Expect, codes map[int]int) []string {
	var p []string
	if len(e.StatusSet) > 0 {
		var other []string
		for _, code := range slices.Sorted(maps.Keys(codes)) {
			if codes[code] > 0 && !slices.Contains(e.StatusSet, code) {
				other = append(other, fmt.Sprintf("%d × %s", codes[code], codeName(code)))
			}
		}
		if len(other) > 0 {
			p = append(p, fmt.Sprintf("responses outside status_set %v: %s", e.StatusSet, strings.Join(other, ", ")))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(e.MinCount)) {
		code, err := strconv.Atoi(k)
		if err != nil {
			p = append(p, fmt.Sprintf("min_count key %q is not a status code", k))
			continue
		}
		if codes[code] < e.MinCount[k] {
			p = append(p, fmt.Sprintf("%d responses with status %d, want at least %d", codes[code], code, e.MinCount[k]))
		}
	}
	return p
}

// codeName names a load run's status code; -1 is a request without a
// response (fortio's convention).
func codeName(code int) string {
	if code < 0 {
		return "no response"
	}
	return "status " + strconv.Itoa(code)
}

// formatCodes renders load run counts as "200: 17, 503: 3".
func formatCodes(codes map[int]int) string {
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(codes)) {
		parts = append(parts, fmt.Sprintf("%s: %d", codeName(code), codes[code]))
	}
	return strings.Join(parts, ", ")
}
