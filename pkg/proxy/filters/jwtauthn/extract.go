package jwtauthn

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// extractor finds a request's tokens where its providers look for them:
// Envoy's ExtractorImpl (source/extensions/filters/http/jwt_authn/
// extractor.cc), compiled once per verifier at config time. Locations
// shared by several providers are one location accepting each of their
// issuers.
type extractor struct {
	headers []headerLocation // by header name + prefix, as Envoy's std::map orders them
	params  []namedLocation  // by parameter name
	cookies []namedLocation  // by cookie name
	// sanitize are the headers the providers write (forward_payload_header,
	// claim_to_headers), removed before extraction so a client cannot
	// forge them.
	sanitize []string
}

type headerLocation struct {
	name   string // canonical
	prefix string
	issuers
}

type namedLocation struct {
	name string
	issuers
}

// issuers is Envoy's JwtIssuerChecker: the issuers whose providers use a
// location; a provider without an issuer allows any.
type issuers struct {
	any bool
	set []string
}

func (is *issuers) add(iss string) {
	if iss == "" {
		is.any = true
		return
	}
	for _, s := range is.set {
		if s == iss {
			return
		}
	}
	is.set = append(is.set, iss)
}

func (is *issuers) allows(iss string) bool {
	if is.any {
		return true
	}
	for _, s := range is.set {
		if s == iss {
			return true
		}
	}
	return false
}

// location is where one token was found.
type location struct {
	token   string
	allowed *issuers
	// header is the canonical header the token came from ("" for a query
	// parameter or cookie, which Envoy never removes).
	header string
}

func newExtractor(ps []*provider) *extractor {
	e := &extractor{}
	hdr := map[string]*headerLocation{}
	par := map[string]*namedLocation{}
	coo := map[string]*namedLocation{}
	addHeader := func(iss, name, prefix string) {
		key := strings.ToLower(name) + prefix
		l := hdr[key]
		if l == nil {
			l = &headerLocation{name: http.CanonicalHeaderKey(name), prefix: prefix}
			hdr[key] = l
		}
		l.add(iss)
	}
	addNamed := func(m map[string]*namedLocation, iss, name string) {
		l := m[name]
		if l == nil {
			l = &namedLocation{name: name}
			m[name] = l
		}
		l.add(iss)
	}
	for _, p := range ps {
		for _, h := range p.fromHeaders {
			addHeader(p.issuer, h.name, h.prefix)
		}
		for _, q := range p.fromParams {
			addNamed(par, p.issuer, q)
		}
		for _, c := range p.fromCookies {
			addNamed(coo, p.issuer, c)
		}
		if len(p.fromHeaders) == 0 && len(p.fromParams) == 0 && len(p.fromCookies) == 0 {
			// Envoy's defaults: Authorization: Bearer <token>, then ?access_token=.
			addHeader(p.issuer, "Authorization", "Bearer ")
			addNamed(par, p.issuer, "access_token")
		}
		e.sanitize = append(e.sanitize, p.sanitize...)
	}
	for _, k := range sortedKeys(hdr) {
		e.headers = append(e.headers, *hdr[k])
	}
	for _, k := range sortedKeys(par) {
		e.params = append(e.params, *par[k])
	}
	for _, k := range sortedKeys(coo) {
		e.cookies = append(e.cookies, *coo[k])
	}
	return e
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// extract returns the request's tokens in Envoy's order: header
// locations, then query parameters, then cookies (the authenticator
// verifies them from the last one back).
func (e *extractor) extract(r *http.Request, out []location) []location {
	for i := range e.headers {
		l := &e.headers[i]
		vs, ok := r.Header[l.name]
		if !ok {
			continue
		}
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ",") // getAllOfHeaderAsString
		}
		if l.prefix != "" {
			pos := strings.Index(v, l.prefix)
			if pos < 0 {
				continue
			}
			v = extractJWT(v, pos+len(l.prefix))
		}
		out = append(out, location{token: v, allowed: &l.issuers, header: l.name})
	}
	if len(e.params) > 0 && r.URL.RawQuery != "" {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		for i := range e.params {
			if vs, ok := q[e.params[i].name]; ok {
				out = append(out, location{token: vs[0], allowed: &e.params[i].issuers})
			}
		}
	}
	for i := range e.cookies {
		if c, err := r.Cookie(e.cookies[i].name); err == nil {
			out = append(out, location{token: c.Value, allowed: &e.cookies[i].issuers})
		}
	}
	return out
}

// extractJWT is Envoy's ExtractorImpl::extractJWT: from offset after, the
// first run of base64url characters and dots; the whole value when there
// is none.
func extractJWT(v string, after int) string {
	start := -1
	for i := after; i < len(v); i++ {
		if isJWTChar(v[i]) {
			start = i
			break
		}
	}
	if start < 0 {
		return v
	}
	end := start
	for end < len(v) && isJWTChar(v[end]) {
		end++
	}
	return v[start:end]
}

// jwtChars are base64url's characters and the dot.
var jwtChars = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") {
		t[c] = true
	}
	return t
}()

func isJWTChar(c byte) bool { return jwtChars[c] }

// sanitizeHeaders removes the headers the providers write.
func (e *extractor) sanitizeHeaders(r *http.Request) {
	for _, h := range e.sanitize {
		delete(r.Header, h)
	}
}
