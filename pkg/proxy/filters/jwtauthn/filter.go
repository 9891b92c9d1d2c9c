// Package jwtauthn is Envoy's JWT authentication HTTP filter
// (envoy.filters.http.jwt_authn, source/extensions/filters/http/jwt_authn)
// for the config Istio's RequestAuthentication becomes
// (pilot/pkg/security/authn/policy_applier.go): providers with inline
// JWKS compiled once per listener, Envoy's token extraction, its verifier
// tree (requires_any / requires_all / allow_missing ...), its failure
// statuses and answers, the verified payload in the request's dynamic
// metadata for the RBAC filter. Signatures are checked with go-jose.
package jwtauthn

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// Name is the filter's name as Envoy registers it; it is also the
// dynamic metadata namespace the verified payloads are written under.
const Name = "envoy.filters.http.jwt_authn"

var slot = httpfilter.Register(factory{})

type factory struct{}

func (factory) Name() string { return Name }

func (factory) ConfigType() string {
	return string((&jwtv3.JwtAuthentication{}).ProtoReflect().Descriptor().FullName())
}

// NewFilter compiles the listener-level JwtAuthentication: every provider's
// JWKS parsed and keys built once, the rules and their verifier trees.
func (factory) NewFilter(cfg *anypb.Any) (httpfilter.Filter, error) {
	if cfg == nil {
		return nil, fmt.Errorf("jwt_authn: typed_config is required")
	}
	fc, err := compileConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("jwt_authn: %w", err)
	}
	return &filter{cfg: fc}, nil
}

// CompilePerRoute rejects a per-route PerRouteConfig (disabled /
// requirement_name): Istio sends none and the filter does not honour it.
func (factory) CompilePerRoute(in *httpfilter.PerRouteInput) (any, error) {
	if in.Route.TypedPerFilterConfig[Name] != nil || in.VirtualHost.TypedPerFilterConfig[Name] != nil {
		return nil, fmt.Errorf("jwt_authn: typed_per_filter_config (PerRouteConfig): not supported")
	}
	return nil, nil
}

// Stats are the filter's counters per connection manager
// (http.<stat_prefix>.jwt_authn.*, Envoy's JwtAuthnFilterStats).
type Stats struct {
	Allowed               atomic.Uint64
	Denied                atomic.Uint64
	CORSPreflightBypassed atomic.Uint64
	// JwtCacheHit and JwtCacheMiss count the lookups of a provider's
	// verified tokens (cache.go).
	JwtCacheHit  atomic.Uint64
	JwtCacheMiss atomic.Uint64
}

func (factory) NewListenerStats() httpfilter.Stats { return &Stats{} }

// WriteText writes the counters (http.<stat_prefix>.jwt_authn.*).
func (s *Stats) WriteText(w io.Writer, prefix string) {
	fmt.Fprintf(w, "http.%s.jwt_authn.allowed: %d\n", prefix, s.Allowed.Load())
	fmt.Fprintf(w, "http.%s.jwt_authn.cors_preflight_bypassed: %d\n", prefix, s.CORSPreflightBypassed.Load())
	fmt.Fprintf(w, "http.%s.jwt_authn.denied: %d\n", prefix, s.Denied.Load())
	fmt.Fprintf(w, "http.%s.jwt_authn.jwt_cache_hit: %d\n", prefix, s.JwtCacheHit.Load())
	fmt.Fprintf(w, "http.%s.jwt_authn.jwt_cache_miss: %d\n", prefix, s.JwtCacheMiss.Load())
}

type filter struct{ cfg *filterConfig }

// Decode is Envoy's Filter::decodeHeaders and onComplete: claim headers
// sanitized, CORS preflights bypassed when configured, the first matching
// rule's requirement verified; a failure is answered 401 (403 for
// audiences not allowed) with the status text and WWW-Authenticate.
func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	fc, r := f.cfg, s.R
	st := s.Listener.Filter(slot).(*Stats)
	// A forged claim header that chose the route: the route is matched
	// again without it whatever happens next (sluice's addition to
	// Envoy, which re-matches only after adding claim headers).
	forged := false
	for _, h := range fc.allSanitize {
		if _, ok := r.Header[h.name]; ok {
			delete(r.Header, h.name)
			forged = forged || h.clearRoute
		}
	}
	if fc.bypassCORS && isCORSPreflight(r) {
		st.CORSPreflightBypassed.Add(1)
		return allow(s, st, forged)
	}
	var v verifier
	for i := range fc.rules {
		if fc.rules[i].m.matches(r) {
			v = fc.rules[i].v
			break
		}
	}
	if v == nil {
		return allow(s, st, forged)
	}
	rc := &reqCtx{s: s, stats: st, now: uint64(time.Now().Unix())}
	status := v.verify(rc)
	if status != StatusOk {
		st.Denied.Add(1)
		deny(s, rc, status)
		return httpfilter.Answered
	}
	return allow(s, st, forged || rc.clearRoute)
}

// allow counts an allowed request and re-matches its route when the
// filter changed what the route may have been chosen on.
func allow(s *httpfilter.Stream, st *Stats, rematch bool) httpfilter.Status {
	st.Allowed.Add(1)
	if rematch && s.Routes != nil {
		return reroute(s)
	}
	return httpfilter.Continue
}

// reroute is clear_route_cache: the route is matched again on the
// request as the filter left it (claim headers added), and the filters
// after this one and the router use the new route. No route now is
// answered as the router answers it: 404, flag NR, no body.
func reroute(s *httpfilter.Stream) httpfilter.Status {
	rte := s.Routes.Rematch(s.R, s.Authority)
	if rte == nil {
		s.Info.Flags |= httpfilter.FlagNR
		s.Info.Status = http.StatusNotFound
		s.W.Header().Set("X-Sluice-Reason", "no route matched after jwt_authn cleared the route cache")
		s.W.Header().Set(httpfilter.ResponseFlagsHeader, s.Info.Flags.String())
		s.W.WriteHeader(http.StatusNotFound)
		return httpfilter.Answered
	}
	s.Route, s.Info.Route = rte, rte.RouteName()
	return httpfilter.Continue
}

// isCORSPreflight is Envoy's isCorsPreflightRequest: OPTIONS with a
// non-empty Origin and Access-Control-Request-Method.
func isCORSPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && httpfilter.FirstHeader(r.Header, "Origin") != "" &&
		httpfilter.FirstHeader(r.Header, "Access-Control-Request-Method") != ""
}

// maxRealmPath is Envoy's MaximumUriLength for the realm's path.
const maxRealmPath = 256

// deny answers a failed verification as Envoy's onComplete does and logs
// one line (the status and the token's claimed issuer, nothing of the
// token itself).
func deny(s *httpfilter.Stream, rc *reqCtx, status Status) {
	code := http.StatusUnauthorized
	if status == JwtAudienceNotAllowed {
		code = http.StatusForbidden
	}
	v := `Bearer realm="` + originalURI(s.R) + `"`
	if status != JwtMissed {
		v += `, error="invalid_token"`
	}
	s.W.Header().Set("Www-Authenticate", v)
	slog.Info("jwt_authn: request denied", "status", status.String(), "code", code,
		"issuer", rc.failIssuer, "route", s.Info.Route, "stat_prefix", s.Info.StatPrefix)
	httpfilter.LocalReply(s.W, &s.Info, code, 0, "jwt authentication failed: "+status.String(), status.String())
}

// originalURI is Http::Utility::buildOriginalUri: scheme (the
// x-forwarded-proto the connection manager keeps, else the connection's),
// authority and the path with its query, the path cut at 256 bytes.
func originalURI(r *http.Request) string {
	scheme := httpfilter.FirstHeader(r.Header, "X-Forwarded-Proto")
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	path := router.RequestPath(r)
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	if len(path) > maxRealmPath {
		path = path[:maxRealmPath]
	}
	return scheme + "://" + r.Host + path
}

// reqCtx is one request's verification: the tokens parsed (once each)
// and the signatures checked (once per token and provider), shared by
// every verifier of the tree.
type reqCtx struct {
	s          *httpfilter.Stream
	stats      *Stats
	now        uint64
	locs       []location
	tokens     []parsedToken
	sigs       []sigResult
	clearRoute bool
	failIssuer string
}

type parsedToken struct {
	raw string
	t   *token
	st  Status
}

type sigResult struct {
	t  *token
	p  *provider
	st Status
}

func (rc *reqCtx) parse(raw string) (*token, Status) {
	for i := range rc.tokens {
		if rc.tokens[i].raw == raw {
			return rc.tokens[i].t, rc.tokens[i].st
		}
	}
	t, st := parseToken(raw)
	rc.tokens = append(rc.tokens, parsedToken{raw: raw, t: t, st: st})
	return t, st
}

// cached is a token p verified before (this request or an earlier one).
func (rc *reqCtx) cached(raw string, p *provider) *token {
	t := p.verified.get(raw)
	if t == nil {
		rc.stats.JwtCacheMiss.Add(1)
		return nil
	}
	rc.stats.JwtCacheHit.Add(1)
	rc.tokens = append(rc.tokens, parsedToken{raw: raw, t: t})
	return t
}

func (rc *reqCtx) signature(t *token, p *provider) Status {
	for i := range rc.sigs {
		if rc.sigs[i].t == t && rc.sigs[i].p == p {
			return rc.sigs[i].st
		}
	}
	if p.verified.get(t.raw) == t {
		return StatusOk
	}
	st := verifySignature(t, p.keys)
	rc.sigs = append(rc.sigs, sigResult{t: t, p: p, st: st})
	if st == StatusOk {
		t.jws = nil // not needed any more; cached tokens are read only
		p.verified.put(t)
	}
	return st
}

func (rc *reqCtx) noteFailure(_ Status, iss string) { rc.failIssuer = iss }
