package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// jwk is one usable key of a provider's JWKS, compiled once at config
// time: Envoy's Jwks::Pubkey (source/common/jwt/jwks.h) holding the key
// go-jose parsed.
type jwk struct {
	kty, kid, alg, crv string
	// key is what go-jose verifies with: *rsa.PublicKey,
	// *ecdsa.PublicKey, ed25519.PublicKey or []byte (oct).
	key any
}

// parseJWKS reads a JWKS as Envoy's Jwks::createFromJwksCore does
// (source/common/jwt/jwks.cc): a JSON object with a "keys" array (or,
// without "keys", Google's x509 form: kid -> PEM certificate); each key
// Envoy would reject is skipped, and a JWKS without one usable key is an
// error (Envoy logs "Invalid inline jwks" and every token of the provider
// then fails with "Jwks doesn't have any valid public key"). The key
// material is parsed by go-jose (JSONWebKey) and crypto/x509.
func parseJWKS(text string) ([]jwk, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &top); err != nil {
		return nil, fmt.Errorf("Jwks is an invalid JSON: %w", err)
	}
	rawKeys, ok := top["keys"]
	if !ok {
		if keys, ok := parseX509JWKS(top); ok {
			return keys, nil
		}
		return nil, errors.New("Jwks does not have [keys] field")
	}
	var list []json.RawMessage
	if err := json.Unmarshal(rawKeys, &list); err != nil {
		return nil, errors.New("[keys] in Jwks is not an array")
	}
	var keys []jwk
	var firstErr error
	for i, raw := range list {
		k, err := parseJWK(raw)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("keys[%d]: %w", i, err)
			}
			continue
		}
		if k != nil {
			keys = append(keys, *k)
		}
	}
	if len(keys) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no keys")
		}
		return nil, fmt.Errorf("Jwks doesn't have any valid public key: %w", firstErr)
	}
	return keys, nil
}

// parseJWK applies Envoy's checks of one key (extractJwk in jwks.cc: kty
// required, alg consistent with kty, EC curve defaults) and has go-jose
// parse the key material. A non-object entry is skipped (nil, nil).
func parseJWK(raw json.RawMessage) (*jwk, error) {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil, nil
	}
	str := func(name string) (string, bool, error) {
		v, ok := m[name]
		if !ok {
			return "", false, nil
		}
		s, isStr := v.(string)
		if !isStr {
			return "", true, fmt.Errorf("[%s] is not a string", name)
		}
		return s, true, nil
	}
	kty, present, err := str("kty")
	if !present {
		return nil, errors.New("[kty] is missing in [keys]")
	}
	if err != nil {
		return nil, errors.New("[kty] is bad in [keys]")
	}
	k := &jwk{kty: kty}
	k.kid, _, _ = str("kid")
	k.alg, _, _ = str("alg")
	if err := checkAlg(k, m); err != nil {
		return nil, err
	}
	fixed, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var jk jose.JSONWebKey
	if err := jk.UnmarshalJSON(fixed); err != nil {
		return nil, err
	}
	return k, setKey(k, jk.Key)
}

// checkAlg is Envoy's per-kty check of alg and crv (extractJwkFromJwkRSA,
// ...EC, ...Oct, ...OKP); for EC it fills in the curve Envoy infers.
func checkAlg(k *jwk, m map[string]any) error {
	crv, _ := m["crv"].(string)
	if _, ok := m["crv"]; ok {
		if _, isStr := m["crv"].(string); !isStr {
			return fmt.Errorf("[crv] field is not string for an %s key", k.kty)
		}
	}
	switch k.kty {
	case "RSA":
		if k.alg != "" && !strings.HasPrefix(k.alg, "RS") && !strings.HasPrefix(k.alg, "PS") {
			return errors.New("[alg] is not started with [RS] or [PS] for an RSA key")
		}
	case "EC":
		if k.alg != "" && !strings.HasPrefix(k.alg, "ES") {
			return errors.New("[alg] is not started with [ES] for an EC key")
		}
		byAlg := map[string]string{"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
		if k.alg != "" && crv != "" && byAlg[k.alg] != crv {
			return errors.New("[crv] field specified is not compatible with [alg] for an EC key")
		}
		switch {
		case byAlg[k.alg] != "":
			crv = byAlg[k.alg]
		case crv == "" && k.alg == "":
			crv = "P-256"
		case crv != "P-256" && crv != "P-384" && crv != "P-521":
			return errors.New("[crv] or [alg] field is not supported for an EC key")
		}
		m["crv"] = crv
	case "oct":
		if k.alg != "" && k.alg != "HS256" && k.alg != "HS384" && k.alg != "HS512" {
			return errors.New("[alg] does not start with [HS] for an HMAC key")
		}
	case "OKP":
		if k.alg != "" && k.alg != "EdDSA" {
			return errors.New("[alg] is not [EdDSA] for an OKP key")
		}
		if crv != "Ed25519" {
			return errors.New("[crv] field is not supported for an OKP key")
		}
	default:
		return errors.New("[kty] is not supported in [keys]")
	}
	k.crv = crv
	return nil
}

// setKey keeps the public half of what go-jose parsed, with Envoy's extra
// RSA rule (createRsaFromJwk: e must be 3 or 65537).
func setKey(k *jwk, key any) error {
	if s, ok := key.(crypto.Signer); ok {
		key = s.Public() // a JWKS with private parts: only the public key is used
	}
	switch pk := key.(type) {
	case *rsa.PublicKey:
		if k.kty != "RSA" {
			return errors.New("key type mismatch")
		}
		if pk.E != 3 && pk.E != 65537 {
			return errors.New("Jwks RSA [n] or [e] field is missing or has a parse error")
		}
	case *ecdsa.PublicKey:
		if k.kty != "EC" {
			return errors.New("key type mismatch")
		}
	case ed25519.PublicKey:
		if k.kty != "OKP" {
			return errors.New("key type mismatch")
		}
	case []byte:
		if k.kty != "oct" || len(pk) == 0 {
			return errors.New("Jwks Oct key is an invalid Base64")
		}
	default:
		return fmt.Errorf("unsupported key %T", key)
	}
	k.key = key
	return nil
}

// parseX509JWKS reads the x509 form Envoy accepts (shouldCheckX509 /
// createFromX509): every field a kid whose value is one PEM certificate
// with an RSA key.
func parseX509JWKS(top map[string]json.RawMessage) ([]jwk, bool) {
	if len(top) == 0 {
		return nil, false
	}
	var keys []jwk
	for kid, raw := range top {
		var cert string
		if kid == "" || json.Unmarshal(raw, &cert) != nil ||
			!strings.HasPrefix(cert, "-----BEGIN CERTIFICATE-----\n") || !strings.HasSuffix(cert, "\n-----END CERTIFICATE-----\n") {
			return nil, false
		}
		block, _ := pem.Decode([]byte(cert))
		if block == nil {
			return nil, false
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, false
		}
		pk, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, false
		}
		keys = append(keys, jwk{kty: "RSA", kid: kid, key: pk})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].kid < keys[j].kid })
	return keys, true
}
