package ca

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Local mode has no Kubernetes service account tokens, so a proxy proves
// it may hold an identity with a token the control plane made:
//
//   - the bootstrap token (a random secret in a 0600 file the control
//     plane writes): whoever can read it may ask for any identity, as an
//     operator of the local mesh;
//   - a bound token (`sluice control token`): a JWT signed with HS256 by a
//     key in a 0600 file beside the bootstrap token, whose subject is a
//     Kubernetes-style service account, system:serviceaccount:<ns>:<sa>;
//     it gets that identity only. Replacing the key file revokes every
//     bound token.
const (
	FileBootstrapToken = "bootstrap-token"
	FileTokenKey       = "token-signing-key"
	tokenIssuer        = "sluice-control"
	saSubjectPrefix    = "system:serviceaccount:"
)

// Caller is who a valid token says the caller may be.
type Caller struct {
	// Any is the bootstrap token's holder: any identity.
	Any bool
	// Namespace and ServiceAccount bind a bound token's holder.
	Namespace, ServiceAccount string
	// PodName and PodUID are the pod a Kubernetes token is bound to (its
	// TokenReview's user extra authentication.kubernetes.io/pod-name and
	// pod-uid, as istiod's KubernetesInfo); empty for other tokens.
	PodName, PodUID string
}

// Permits tells whether the caller may hold ns/sa.
func (c Caller) Permits(ns, sa string) bool {
	return c.Any || (c.Namespace == ns && c.ServiceAccount == sa)
}

func (c Caller) String() string {
	if c.Any {
		return "the bootstrap token"
	}
	return "a token bound to " + c.Namespace + "/" + c.ServiceAccount
}

// Tokens checks the tokens a control plane accepts.
type Tokens struct {
	bootstrap []byte
	key       []byte
}

// TokenOptions say where the token files live.
type TokenOptions struct {
	// BootstrapFile is the bootstrap token's file; empty keeps it in
	// memory only (no proxy can present it: tests and embedding).
	BootstrapFile string
	// KeyFile holds the bound tokens' signing key; empty keeps it beside
	// BootstrapFile, or in memory.
	KeyFile string
}

// LoadOrCreateTokens reads the bootstrap token and signing key, making
// each (0600, folder 0700) when absent, so a restarted control plane
// accepts the tokens its proxies already hold.
func LoadOrCreateTokens(opts TokenOptions) (*Tokens, error) {
	if opts.KeyFile == "" && opts.BootstrapFile != "" {
		opts.KeyFile = filepath.Join(filepath.Dir(opts.BootstrapFile), FileTokenKey)
	}
	boot, err := loadOrCreateSecret(opts.BootstrapFile, true)
	if err != nil {
		return nil, fmt.Errorf("ca: bootstrap token: %w", err)
	}
	key, err := loadOrCreateSecret(opts.KeyFile, false)
	if err != nil {
		return nil, fmt.Errorf("ca: token signing key: %w", err)
	}
	return &Tokens{bootstrap: boot, key: key}, nil
}

// Bootstrap is the bootstrap token.
func (t *Tokens) Bootstrap() string { return string(t.bootstrap) }

// loadOrCreateSecret reads a secret file, or writes a new random secret
// (base64url text when text is set) to it; "" makes one in memory.
func loadOrCreateSecret(path string, text bool) ([]byte, error) {
	if path != "" {
		b, err := os.ReadFile(path)
		if err == nil {
			if s := strings.TrimSpace(string(b)); len(s) >= 32 {
				return []byte(s), nil
			}
			return nil, fmt.Errorf("%s: under 32 characters; delete it to have a new one made", path)
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := []byte(base64.RawURLEncoding.EncodeToString(raw))
	if path == "" {
		return secret, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := writeAtomic(path, append(secret, '\n'), 0o600); err != nil {
		return nil, err
	}
	return secret, nil
}

// MintOptions describe a bound token.
type MintOptions struct {
	// KeyFile is the control plane's token signing key.
	KeyFile                   string
	Namespace, ServiceAccount string
	// TTL bounds the token's life; 0: no expiry (revoke by replacing the
	// key file).
	TTL time.Duration
}

// MintBoundToken makes a token that gets exactly one identity.
func MintBoundToken(opts MintOptions) (string, error) {
	if opts.Namespace == "" || opts.ServiceAccount == "" || strings.ContainsAny(opts.Namespace+opts.ServiceAccount, ":/") {
		return "", fmt.Errorf("token: namespace %q and service account %q must be set, without ':' or '/'", opts.Namespace, opts.ServiceAccount)
	}
	key, err := os.ReadFile(opts.KeyFile)
	if err != nil {
		return "", fmt.Errorf("token: signing key (written by sluice control): %w", err)
	}
	var expiry time.Time
	if opts.TTL > 0 {
		expiry = time.Now().Add(opts.TTL)
	}
	return (&Tokens{key: []byte(strings.TrimSpace(string(key)))}).mint(opts.Namespace, opts.ServiceAccount, expiry)
}

// mint signs a bound token expiring at expiry (zero: never).
func (t *Tokens) mint(ns, sa string, expiry time.Time) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: t.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	now := time.Now()
	claims := jwt.Claims{Issuer: tokenIssuer, Subject: saSubjectPrefix + ns + ":" + sa, IssuedAt: jwt.NewNumericDate(now)}
	if !expiry.IsZero() {
		claims.Expiry = jwt.NewNumericDate(expiry)
	}
	return jwt.Signed(sig).Claims(claims).Serialize()
}

// Check tells who a token lets its holder be, or why it is not valid.
func (t *Tokens) Check(token string) (Caller, error) {
	if token == "" {
		return Caller{}, errors.New("no token")
	}
	if subtle.ConstantTimeCompare([]byte(token), t.bootstrap) == 1 {
		return Caller{Any: true}, nil
	}
	if strings.Count(token, ".") != 2 {
		return Caller{}, errors.New("token is neither the bootstrap token nor a bound token")
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		return Caller{}, fmt.Errorf("bound token: %w", err)
	}
	var claims jwt.Claims
	// Claims verifies the HMAC (constant-time, in go-jose).
	if err := parsed.Claims(t.key, &claims); err != nil {
		return Caller{}, errors.New("bound token: signature does not verify (made by another control plane, or its key was replaced)")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: tokenIssuer, Time: time.Now()}, time.Minute); err != nil {
		return Caller{}, fmt.Errorf("bound token: %w", err)
	}
	rest, ok := strings.CutPrefix(claims.Subject, saSubjectPrefix)
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" {
		return Caller{}, fmt.Errorf("bound token: subject %q is not %s<namespace>:<service account>", claims.Subject, saSubjectPrefix)
	}
	return Caller{Namespace: ns, ServiceAccount: sa}, nil
}
