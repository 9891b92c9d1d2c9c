package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
)

// verifier is a compiled JwtRequirement: Envoy's verifier tree
// (verifier.cc), evaluated synchronously (local JWKS only, so nothing
// waits).
type verifier interface {
	verify(rc *reqCtx) Status
}

// providerVerifier is provider_name / provider_and_audiences
// (ProviderVerifierImpl, ProviderAndAudienceVerifierImpl): the provider's
// tokens, each of which must verify with the provider.
type providerVerifier struct {
	p   *provider
	aud audiences // provider_and_audiences; nil: the provider's
}

func (v *providerVerifier) verify(rc *reqCtx) Status {
	a := authenticator{provider: v.p, aud: v.aud}
	return a.run(rc, v.p.extractor)
}

// allowVerifier is allow_missing / allow_missing_or_failed on their own
// (AllowMissingVerifierImpl, AllowFailedVerifierImpl): the tokens of every
// provider, each checked with the provider of its issuer.
type allowVerifier struct {
	all       *filterConfig
	ext       *extractor
	allowFail bool
}

func (v *allowVerifier) verify(rc *reqCtx) Status {
	a := authenticator{all: v.all, allowMissing: true, allowFailed: v.allowFail}
	return a.run(rc, v.ext)
}

// anyVerifier is requires_any (AnyVerifierImpl): the first child that
// succeeds wins; otherwise Envoy's aggregation of the children's errors,
// then allow_missing / allow_missing_or_failed listed in it.
type anyVerifier struct {
	children                 []verifier
	allowMissing, allowFails bool
}

func (v *anyVerifier) verify(rc *reqCtx) Status {
	final := JwtMissed
	for _, c := range v.children {
		st := c.verify(rc)
		if st == StatusOk {
			return StatusOk
		}
		// Prefer errors other than JwtMissed and JwtUnknownIssuer, and
		// JwtUnknownIssuer over JwtMissed.
		if st != JwtMissed && st != JwtUnknownIssuer || final == JwtMissed {
			final = st
		}
	}
	if v.allowFails || v.allowMissing && final == JwtMissed {
		return StatusOk
	}
	return final
}

// allVerifier is requires_all (AllVerifierImpl): the first failure fails.
type allVerifier struct{ children []verifier }

func (v *allVerifier) verify(rc *reqCtx) Status {
	for _, c := range v.children {
		if st := c.verify(rc); st != StatusOk {
			return st
		}
	}
	return StatusOk
}

// allowAll is a rule without requires (AllowAllVerifierImpl).
type allowAll struct{}

func (allowAll) verify(*reqCtx) Status { return StatusOk }

// authenticator is Envoy's AuthenticatorImpl (authenticator.cc) for one
// verifier: with a provider, the provider checks every token; without
// (allow_missing / allow_missing_or_failed), each token's issuer picks
// the provider.
type authenticator struct {
	provider                  *provider
	all                       *filterConfig
	aud                       audiences
	allowMissing, allowFailed bool
}

// run verifies the extracted tokens from the last one back, as Envoy
// does: unless failures are allowed, every token must verify; with
// allow_missing (or _or_failed) all are tried and the last one's outcome
// counts; no token is JwtMissed.
func (a *authenticator) run(rc *reqCtx, ext *extractor) Status {
	ext.sanitizeHeaders(rc.s.R)
	locs := ext.extract(rc.s.R, rc.locs[:0])
	rc.locs = locs
	if len(locs) == 0 {
		return a.done(JwtMissed)
	}
	var st Status
	for i := len(locs) - 1; i >= 0; i-- {
		st = a.one(rc, locs[i])
		if st != StatusOk && !a.allowFailed && !a.allowMissing {
			return st
		}
	}
	return a.done(st)
}

func (a *authenticator) done(st Status) Status {
	switch {
	case a.allowFailed:
		return StatusOk
	case a.allowMissing && st == JwtMissed:
		return StatusOk
	}
	return st
}

// one checks one token (startVerify, verifyKey and handleGoodJwt).
func (a *authenticator) one(rc *reqCtx, loc location) Status {
	var t *token
	st := StatusOk
	if a.provider != nil {
		t = rc.cached(loc.token, a.provider)
	}
	if t == nil {
		t, st = rc.parse(loc.token)
	}
	if st != StatusOk {
		rc.noteFailure(st, "")
		return st
	}
	if !loc.allowed.allows(t.iss) {
		rc.noteFailure(JwtUnknownIssuer, t.iss)
		return JwtUnknownIssuer
	}
	p := a.provider
	if p == nil {
		if p = a.all.byIssuer(t.iss); p == nil {
			rc.noteFailure(JwtUnknownIssuer, t.iss)
			return JwtUnknownIssuer
		}
	}
	if st = t.checkTime(rc.now, p.clockSkew); st == StatusOk {
		aud := p.aud
		if a.aud != nil {
			aud = a.aud
		}
		if !aud.allowed(t.aud) {
			st = JwtAudienceNotAllowed
		} else if p.keys == nil {
			st = JwksNoValidKeys
		} else {
			st = rc.signature(t, p)
		}
	}
	if st != StatusOk {
		rc.noteFailure(st, t.iss)
		return st
	}
	a.good(rc, t, p, loc)
	return StatusOk
}

// good is handleGoodJwt: the payload header, the claim headers, the
// token's removal, the payload in the metadata.
func (a *authenticator) good(rc *reqCtx, t *token, p *provider, loc location) {
	h := rc.s.R.Header
	if p.payloadHeader != "" {
		v := t.payloadB64
		if p.padPayloadHeader {
			if n := len(v) % 4; n != 0 {
				v += strings.Repeat("=", 4-n)
			}
		}
		h[p.payloadHeader] = append(h[p.payloadHeader], v)
	}
	added := false
	for _, ch := range p.claimHeaders {
		if v := claimHeaderValue(t.payload, ch.path); v != "" {
			h[ch.header] = append(h[ch.header], v)
			added = true
		}
	}
	if !p.forward && loc.header != "" {
		delete(h, loc.header) // Envoy removes the whole header, never a parameter or cookie
	}
	if p.payloadInMetadata != "" {
		// A copy: the token may be shared with other requests (cache.go).
		rc.s.Metadata.Set(Name, p.payloadInMetadata, normalizePayload(t.payload, p.spaceDelimited))
	}
	// clear_route_cache: when claim headers were added or the payload is
	// in the metadata (the JwtProvider.clear_route_cache contract).
	if p.clearRouteCache && (added || p.payloadInMetadata != "") {
		rc.clearRoute = true
	}
}

// claimHeaderValue is addJWTClaimToHeader: strings verbatim, numbers as
// integers when they are whole and non-negative, booleans as
// true/false, objects and lists as base64 of their JSON; "" when the
// claim is missing.
func claimHeaderValue(payload map[string]any, path []string) string {
	var v any = payload
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		if v, ok = m[seg]; !ok {
			return ""
		}
	}
	switch c := v.(type) {
	case string:
		return c
	case float64:
		if c >= 0 && c < 18446744073709551615.0 && c == float64(uint64(c)) {
			return strconv.FormatUint(uint64(c), 10)
		}
		return strconv.FormatFloat(c, 'f', 6, 64) // std::to_string(double)
	case bool:
		return strconv.FormatBool(c)
	case map[string]any, []any:
		b, err := json.Marshal(c)
		if err != nil {
			return ""
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	return ""
}

// normalizePayload is setPayloadMetadata on a copy of the payload (the
// top level; nested values are shared and read only): each
// space-delimited claim holding a string becomes the list of its
// space-separated words (empty words skipped).
func normalizePayload(p map[string]any, claims []string) map[string]any {
	out := maps.Clone(p)
	for _, c := range claims {
		s, ok := p[c].(string)
		if !ok {
			continue
		}
		var list []any
		for _, w := range strings.Split(s, " ") {
			if w != "" {
				list = append(list, w)
			}
		}
		if len(list) > 0 {
			out[c] = list
		}
	}
	return out
}
