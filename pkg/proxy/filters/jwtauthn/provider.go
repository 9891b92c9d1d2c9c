package jwtauthn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
)

// defaultClockSkew is jwt_verify_lib's kClockSkewInSecond, used when a
// provider's clock_skew_seconds is 0.
const defaultClockSkew = 60

// provider is a compiled JwtProvider: its keys parsed once, its header
// names canonical, its own extractor.
type provider struct {
	name   string
	issuer string
	aud    audiences
	// keys are the JWKS's usable keys; nil when the JWKS had none (every
	// token of the provider then fails with JwksNoValidKeys, as in Envoy).
	keys []jwk

	fromHeaders []headerSpec
	fromParams  []string
	fromCookies []string

	forward           bool
	payloadHeader     string // canonical; "" for none
	padPayloadHeader  bool
	payloadInMetadata string
	spaceDelimited    []string
	claimHeaders      []claimHeader
	clockSkew         uint64
	clearRouteCache   bool

	// verified are the tokens whose signature verified with keys.
	verified verifiedCache

	// sanitize are the headers this provider writes.
	sanitize  []string
	extractor *extractor
}

type headerSpec struct{ name, prefix string }

type claimHeader struct {
	header string   // canonical
	path   []string // claim_name split on "."
}

// compileProvider compiles one provider. Its fields were checked against
// the allow-list (fields.go) before.
func compileProvider(name string, p *jwtv3.JwtProvider) (*provider, error) {
	c := &provider{
		name: name, issuer: p.Issuer, aud: newAudiences(p.Audiences),
		fromParams: p.FromParams, fromCookies: p.FromCookies,
		forward: p.Forward, padPayloadHeader: p.PadForwardPayloadHeader,
		payloadInMetadata: p.PayloadInMetadata, clearRouteCache: p.ClearRouteCache,
		spaceDelimited: p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims(),
		clockSkew:      uint64(p.ClockSkewSeconds),
	}
	if c.clockSkew == 0 {
		c.clockSkew = defaultClockSkew
	}
	for _, h := range p.FromHeaders {
		c.fromHeaders = append(c.fromHeaders, headerSpec{name: h.Name, prefix: h.ValuePrefix})
	}
	if p.ForwardPayloadHeader != "" {
		c.payloadHeader = http.CanonicalHeaderKey(p.ForwardPayloadHeader)
		c.sanitize = append(c.sanitize, c.payloadHeader)
	}
	for _, ch := range p.ClaimToHeaders {
		if ch.ClaimName == "" {
			return nil, errors.New("claim_to_headers: claim_name is required")
		}
		h := http.CanonicalHeaderKey(ch.HeaderName)
		c.claimHeaders = append(c.claimHeaders, claimHeader{header: h, path: strings.Split(ch.ClaimName, ".")})
		c.sanitize = append(c.sanitize, h)
	}
	text, err := readJWKS(p.GetLocalJwks())
	if err != nil {
		return nil, fmt.Errorf("local_jwks: %w", err)
	}
	if c.keys, err = parseJWKS(text); err != nil {
		// Envoy accepts the config and logs "Invalid inline jwks for
		// issuer" (jwks_cache.cc); the provider's tokens then fail closed.
		slog.Warn("jwt_authn: invalid local_jwks, every token of the provider will be rejected",
			"provider", name, "issuer", p.Issuer, "error", err)
	}
	c.extractor = newExtractor([]*provider{c})
	return c, nil
}

// readJWKS reads local_jwks (Envoy's Config::DataSource::read).
func readJWKS(ds *core.DataSource) (string, error) {
	switch s := ds.GetSpecifier().(type) {
	case *core.DataSource_InlineString:
		return s.InlineString, nil
	case *core.DataSource_InlineBytes:
		return string(s.InlineBytes), nil
	case *core.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			return "", err
		}
		return string(b), nil
	case nil:
		return "", errors.New("a JWKS source is required")
	default:
		return "", fmt.Errorf("%T: not supported", s)
	}
}

// audiences is jwt_verify_lib's CheckAudience (check_audience.cc):
// configured audiences with an http:// or https:// prefix and a trailing
// slash removed; none configured allows any; else any of the token's
// audiences must be one of them.
type audiences []string

func newAudiences(as []string) audiences {
	out := make(audiences, 0, len(as))
	for _, a := range as {
		out = append(out, sanitizeAudience(a))
	}
	return out
}

func sanitizeAudience(a string) string {
	if a == "" {
		return a
	}
	if s, ok := strings.CutPrefix(a, "http://"); ok {
		a = s
	} else if s, ok := strings.CutPrefix(a, "https://"); ok {
		a = s
	}
	return strings.TrimSuffix(a, "/")
}

func (as audiences) allowed(tokenAud []string) bool {
	if len(as) == 0 {
		return true
	}
	for _, t := range tokenAud {
		t = sanitizeAudience(t)
		for _, a := range as {
			if a == t {
				return true
			}
		}
	}
	return false
}
