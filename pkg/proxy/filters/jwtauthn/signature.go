package jwtauthn

import (
	jose "github.com/go-jose/go-jose/v4"
)

// verifySignature is Envoy's verifyJwtWithoutTimeChecking
// (source/common/jwt/verify.cc): every key whose kid (when both the token
// and the key have one) and alg (when the key has one) match is tried in
// order until one verifies; no key matching is JwksKidAlgMismatch, keys
// matching but none verifying is JwtVerificationFail. The cryptography is
// go-jose's (JSONWebSignature.DetachedVerify).
func verifySignature(t *token, keys []jwk) Status {
	if t.jws == nil {
		jws, err := jose.ParseSignedCompact(t.headerB64+"."+t.payloadB64+"."+t.sigB64, implementedAlgs[t.alg])
		if err != nil {
			// Envoy parsed it (parseToken); go-jose is stricter about
			// the JOSE header (crit, duplicate names): not verifiable.
			return JwtVerificationFail
		}
		t.jws = jws
	}
	matched := false
	for i := range keys {
		k := &keys[i]
		if t.kid != "" && k.kid != "" && k.kid != t.kid {
			continue
		}
		if k.alg != "" && k.alg != t.alg {
			continue
		}
		matched = true
		if k.kty == "OKP" && t.sigLen != 64 {
			return JwtEd25519SignatureWrongLength
		}
		if t.jws.DetachedVerify(t.jws.UnsafePayloadWithoutVerification(), k.key) == nil {
			return StatusOk
		}
	}
	if !matched {
		return JwksKidAlgMismatch
	}
	return JwtVerificationFail
}
