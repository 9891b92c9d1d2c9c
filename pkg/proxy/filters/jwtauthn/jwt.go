package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// token is a JWT as Envoy's Jwt::parseFromString reads it
// (source/common/jwt/jwt.cc): the three base64url sections, the header's
// alg and kid, the registered claims with their type checks, and the
// payload as a JSON-like tree (the metadata and claim_to_headers read it).
// Signatures are checked by go-jose (verify.go).
type token struct {
	raw        string
	headerB64  string
	payloadB64 string
	sigB64     string
	alg, kid   string
	iss, sub   string
	nbf, exp   uint64
	aud        []string
	payload    map[string]any
	sigLen     int
	// jws is go-jose's parse of the compact form, made on first use.
	jws *jose.JSONWebSignature
}

// implementedAlgs are the algorithms Envoy verifies (isImplemented in
// jwt.cc), each with the one-element list go-jose's parser is given.
var implementedAlgs = func() map[string][]jose.SignatureAlgorithm {
	m := map[string][]jose.SignatureAlgorithm{}
	for _, a := range []string{"ES256", "ES384", "ES512", "HS256", "HS384", "HS512",
		"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"} {
		m[a] = []jose.SignatureAlgorithm{jose.SignatureAlgorithm(a)}
	}
	return m
}()

// b64 decodes base64url with or without padding, as absl's
// WebSafeBase64Unescape does.
func b64(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawURLEncoding.DecodeString(s)
	return b, err == nil
}

// parseToken parses raw, checking what Envoy checks in the order it does.
func parseToken(raw string) (*token, Status) {
	t := &token{raw: raw}
	var parts [3]string
	n := 0
	for _, p := range strings.Split(raw, ".") {
		if p == "" {
			continue // absl::SkipEmpty
		}
		if n == 3 {
			return nil, JwtBadFormat
		}
		parts[n] = p
		n++
	}
	if n != 3 {
		return nil, JwtBadFormat
	}
	t.headerB64, t.payloadB64, t.sigB64 = parts[0], parts[1], parts[2]
	if st := t.parseHeader(); st != StatusOk {
		return nil, st
	}
	if st := t.parsePayload(); st != StatusOk {
		return nil, st
	}
	sig, ok := b64(t.sigB64)
	if !ok {
		return nil, JwtSignatureParseErrorBadBase64
	}
	t.sigLen = len(sig)
	return t, StatusOk
}

func (t *token) parseHeader() Status {
	hb, ok := b64(t.headerB64)
	if !ok {
		return JwtHeaderParseErrorBadBase64
	}
	var h map[string]any
	if json.Unmarshal(hb, &h) != nil || h == nil {
		return JwtHeaderParseErrorBadJSON
	}
	alg, ok := h["alg"].(string)
	if !ok {
		return JwtHeaderBadAlg
	}
	if implementedAlgs[alg] == nil {
		return JwtHeaderNotImplementedAlg
	}
	t.alg = alg
	if v, present := h["kid"]; present {
		kid, ok := v.(string)
		if !ok {
			return JwtHeaderBadKid
		}
		t.kid = kid
	}
	return StatusOk
}

func (t *token) parsePayload() Status {
	pb, ok := b64(t.payloadB64)
	if !ok {
		return JwtPayloadParseErrorBadBase64
	}
	if json.Unmarshal(pb, &t.payload) != nil || t.payload == nil {
		return JwtPayloadParseErrorBadJSON
	}
	var bad bool
	if t.iss, bad = claimString(t.payload, "iss"); bad {
		return JwtPayloadParseErrorIssNotString
	}
	if t.sub, bad = claimString(t.payload, "sub"); bad {
		return JwtPayloadParseErrorSubNotString
	}
	for _, c := range [...]struct {
		name              string
		dst               *uint64
		notInt, outOfRang Status
	}{
		{"iat", nil, JwtPayloadParseErrorIatNotInteger, JwtPayloadParseErrorIatOutOfRange},
		{"nbf", &t.nbf, JwtPayloadParseErrorNbfNotInteger, JwtPayloadParseErrorNbfOutOfRange},
		{"exp", &t.exp, JwtPayloadParseErrorExpNotInteger, JwtPayloadParseErrorExpOutOfRange},
	} {
		v, st := claimUint(t.payload, c.name, c.notInt, c.outOfRang)
		if st != StatusOk {
			return st
		}
		if c.dst != nil {
			*c.dst = v
		}
	}
	if _, bad = claimString(t.payload, "jti"); bad {
		return JwtPayloadParseErrorJtiNotString
	}
	aud, present := t.payload["aud"]
	switch a := aud.(type) {
	case nil:
		if present {
			return JwtPayloadParseErrorAudNotString // null
		}
	case string:
		t.aud = []string{a}
	case []any:
		t.aud = make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return JwtPayloadParseErrorAudNotString
			}
			t.aud = append(t.aud, s)
		}
	default:
		return JwtPayloadParseErrorAudNotString
	}
	return StatusOk
}

// claimString reads a string claim; bad when present and not a string.
func claimString(p map[string]any, name string) (string, bool) {
	v, ok := p[name]
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	return s, !isStr
}

// claimUint reads a numeric date claim as StructUtils::GetUInt64 does.
func claimUint(p map[string]any, name string, notInt, outOfRange Status) (uint64, Status) {
	v, ok := p[name]
	if !ok {
		return 0, StatusOk
	}
	f, isNum := v.(float64)
	if !isNum {
		return 0, notInt
	}
	if f < 0 || f >= math.MaxUint64 {
		return 0, outOfRange
	}
	return uint64(f), StatusOk
}

// checkTime is Jwt::verifyTimeConstraint: nbf with the clock skew, then
// exp (0 or absent: no expiry).
func (t *token) checkTime(now, skew uint64) Status {
	if now+skew < t.nbf {
		return JwtNotYetValid
	}
	if t.exp != 0 && now > t.exp+skew {
		return JwtExpired
	}
	return StatusOk
}
