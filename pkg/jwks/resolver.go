// Package jwks fetches the JSON Web Key Sets of RequestAuthentication
// jwtRules in the control plane, as istiod's JwksResolver does
// (pilot/pkg/model/jwks_resolver.go): the generator inlines them into
// jwt_authn as local_jwks, so proxies never fetch keys themselves.
//
// Keys are cached per (issuer, jwksUri) and refreshed in the background
// (every RefreshInterval; after a failed refresh sooner, backing off to
// an hour); a refresh that changes the keys calls OnChange (the control
// plane's push). A first fetch that fails is cached as a failure and
// retried in the background: the generator then inlines
// model.PublicOnlyJwks, so tokens of that issuer fail (fail closed), and
// the failure is logged and listed in Failures.
package jwks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults, Istio's (features.PilotJwtPubKeyRefreshInterval,
// JwtPubKeyRefreshIntervalOnFailure, JwtPubKeyEvictionDuration,
// JwtPubKeyRetryInterval, JwtPubKeyRefreshIntervalOnFailureResetThreshold).
const (
	DefaultRefreshInterval          = 20 * time.Minute
	DefaultRefreshIntervalOnFailure = time.Minute
	DefaultEvictionDuration         = 7 * 24 * time.Hour
	DefaultRetryInterval            = time.Second
	maxRefreshIntervalOnFailure     = time.Hour
	// DefaultMaxBytes bounds a JWKS or OpenID discovery document: a
	// larger one is a fetch failure, not a memory exhaustion.
	DefaultMaxBytes = 1 << 20
	// refreshRetries are the retries of a background refresh (Istio's
	// networkFetchRetryCountOnRefreshFlow); a first fetch is not retried.
	refreshRetries = 7
)

const openIDDiscoverySuffix = "/.well-known/openid-configuration"

// Options configure a Resolver.
type Options struct {
	RefreshInterval          time.Duration
	RefreshIntervalOnFailure time.Duration
	RetryInterval            time.Duration
	EvictionDuration         time.Duration
	MaxBytes                 int64
	// ExtraRootsPEM are CA certificates trusted for https jwksUris
	// besides the system roots (istiod reads /cacerts/extra.pem; sluice:
	// `control --jwks-ca-file`).
	ExtraRootsPEM []byte
	// OnChange is called after a background refresh changed some keys.
	OnChange func()
	Logger   *slog.Logger
}

type key struct{ issuer, uri string }

type entry struct {
	keys          string
	err           error
	lastRefreshed time.Time
	lastUsed      time.Time
	timeout       time.Duration
}

// Resolver is the control plane's JWKS cache. Safe for concurrent use.
type Resolver struct {
	opts   Options
	log    *slog.Logger
	client *http.Client

	mu      sync.Mutex
	entries map[key]*entry
	retry   chan struct{}
}

// New returns a Resolver; call Run to refresh in the background.
func New(opts Options) (*Resolver, error) {
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.RefreshIntervalOnFailure <= 0 {
		opts.RefreshIntervalOnFailure = DefaultRefreshIntervalOnFailure
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.EvictionDuration <= 0 {
		opts.EvictionDuration = DefaultEvictionDuration
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if len(opts.ExtraRootsPEM) > 0 && !roots.AppendCertsFromPEM(opts.ExtraRootsPEM) {
		return nil, errors.New("jwks: no CA certificate in the extra roots")
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, Control: blockedAddressControl}
	return &Resolver{
		opts: opts, log: opts.Logger, entries: map[key]*entry{}, retry: make(chan struct{}, 1),
		client: &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true, DialContext: dialer.DialContext,
			TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		}},
	}, nil
}

// Jwks returns the key set of issuer at jwksURI (empty: discovered from
// the issuer's /.well-known/openid-configuration), from the cache or
// fetched now within timeout (model.JwksSource). A failure is cached and
// retried in the background.
func (r *Resolver) Jwks(issuer, jwksURI string, timeout time.Duration) (string, error) {
	k := key{issuer: issuer, uri: jwksURI}
	now := time.Now()
	r.mu.Lock()
	if e, ok := r.entries[k]; ok {
		e.lastUsed, e.timeout = now, timeout
		keys, err := e.keys, e.err
		r.mu.Unlock()
		return keys, err
	}
	r.mu.Unlock()
	keys, err := r.fetch(k, timeout, 0)
	if err != nil {
		r.log.Warn("JWKS fetch failed; tokens of this issuer are refused until it succeeds", "issuer", issuer, "jwksUri", jwksURI, "err", err)
	}
	r.mu.Lock()
	r.entries[k] = &entry{keys: keys, err: err, lastRefreshed: now, lastUsed: now, timeout: timeout}
	r.mu.Unlock()
	if err != nil {
		select {
		case r.retry <- struct{}{}:
		default:
		}
	}
	return keys, err
}

// Failure is one key set that could not be fetched.
type Failure struct {
	Issuer  string    `json:"issuer"`
	JwksURI string    `json:"jwks_uri,omitempty"`
	Error   string    `json:"error"`
	Since   time.Time `json:"since"`
}

// Failures lists the key sets whose last fetch failed, sorted.
func (r *Resolver) Failures() []Failure {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Failure
	for k, e := range r.entries {
		if e.err != nil {
			out = append(out, Failure{Issuer: k.issuer, JwksURI: k.uri, Error: e.err.Error(), Since: e.lastRefreshed})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Issuer+" "+out[i].JwksURI < out[j].Issuer+" "+out[j].JwksURI
	})
	return out
}

// Run refreshes the cache until ctx ends: every RefreshInterval (after a
// failed round RefreshIntervalOnFailure, doubling up to an hour), and
// soon after a first fetch failed.
func (r *Resolver) Run(ctx context.Context) {
	interval := r.opts.RefreshInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	lastFailed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.retry:
			// A failed first fetch: retry the failed entries only.
			time.Sleep(r.opts.RetryInterval)
			if r.refresh(ctx, true) && !lastFailed {
				// Still failing: try again after RefreshIntervalOnFailure
				// rather than a whole RefreshInterval.
				interval, lastFailed = r.opts.RefreshIntervalOnFailure, true
				timer.Reset(interval)
			}
		case <-timer.C:
			failed := r.refresh(ctx, false)
			switch {
			case !failed:
				interval = r.opts.RefreshInterval
			case lastFailed:
				interval = min(interval*2, maxRefreshIntervalOnFailure)
			default:
				interval = r.opts.RefreshIntervalOnFailure
			}
			lastFailed = failed
			timer.Reset(interval)
		}
	}
}

// Refresh fetches every cached key set again now; it reports whether a
// fetch failed. OnChange is called when some keys changed.
func (r *Resolver) Refresh(ctx context.Context) bool { return r.refresh(ctx, false) }

func (r *Resolver) refresh(ctx context.Context, onlyFailed bool) bool {
	now := time.Now()
	r.mu.Lock()
	todo := map[key]entry{}
	for k, e := range r.entries {
		if now.Sub(e.lastUsed) >= r.opts.EvictionDuration {
			delete(r.entries, k)
			continue
		}
		if onlyFailed && e.err == nil {
			continue
		}
		todo[k] = *e
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	changed, failed := false, false
	for k, old := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys, err := r.fetch(k, old.timeout, refreshRetries)
			if ctx.Err() != nil {
				return
			}
			diff := err == nil && jwksChanged(old.keys, keys)
			r.mu.Lock()
			if e, ok := r.entries[k]; ok {
				switch {
				case err == nil:
					e.keys, e.err, e.lastRefreshed = keys, nil, time.Now()
				case old.err != nil:
					e.err = err // still failing
				default:
					// Keep serving the last good keys, as istiod does.
				}
			}
			r.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = true
				r.log.Warn("JWKS refresh failed", "issuer", k.issuer, "jwksUri", k.uri, "err", err)
			}
			if diff {
				changed = true
				r.log.Info("JWKS changed", "issuer", k.issuer, "jwksUri", k.uri)
			}
		}()
	}
	wg.Wait()
	if changed && r.opts.OnChange != nil {
		r.opts.OnChange()
	}
	return failed
}

// fetch reads one key set, resolving the jwksUri by OpenID discovery
// when it is empty; retries after RetryInterval.
func (r *Resolver) fetch(k key, timeout time.Duration, retries int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		var keys string
		keys, err = r.fetchOnce(ctx, k)
		if err == nil {
			return keys, nil
		}
		if attempt >= retries || ctx.Err() != nil {
			return "", err
		}
		time.Sleep(r.opts.RetryInterval)
	}
}

func (r *Resolver) fetchOnce(ctx context.Context, k key) (string, error) {
	uri := k.uri
	if uri == "" {
		if k.issuer == "" {
			return "", errors.New("jwksUri and issuer are both empty")
		}
		body, err := r.get(ctx, strings.TrimSuffix(k.issuer, "/")+openIDDiscoverySuffix)
		if err != nil {
			return "", fmt.Errorf("OpenID discovery: %w", err)
		}
		var doc struct {
			JwksURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || doc.JwksURI == "" {
			return "", fmt.Errorf("OpenID discovery of %q: no jwks_uri", k.issuer)
		}
		uri = doc.JwksURI
	}
	body, err := r.get(ctx, uri)
	if err != nil {
		return "", err
	}
	if err := validateJWKS(body); err != nil {
		return "", fmt.Errorf("%s is not a JWKS: %w", uri, err)
	}
	return string(body), nil
}

func (r *Resolver) get(ctx context.Context, uri string) ([]byte, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URI scheme %q is not supported", u.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.opts.MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > r.opts.MaxBytes {
		return nil, fmt.Errorf("GET %s: body larger than %d bytes", uri, r.opts.MaxBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		msg := string(body)
		if len(msg) > 100 {
			msg = msg[:100] + "(truncated)"
		}
		return nil, fmt.Errorf("GET %s: status %d, message %q", uri, resp.StatusCode, msg)
	}
	return body, nil
}

// validateJWKS is Istio's validateJWKSFormat: a JSON object with a
// "keys" array.
func validateJWKS(body []byte) error {
	var doc struct {
		Keys *json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	if doc.Keys == nil {
		return errors.New(`missing "keys" field`)
	}
	var keys []json.RawMessage
	if err := json.Unmarshal(*doc.Keys, &keys); err != nil {
		return fmt.Errorf(`"keys" is not an array: %w`, err)
	}
	return nil
}

// jwksChanged is compareJWKSResponse: the key sets differ other than in
// formatting and key order.
func jwksChanged(oldKeys, newKeys string) bool {
	if oldKeys == newKeys {
		return false
	}
	var o, n struct {
		Keys []map[string]any `json:"keys"`
	}
	if json.Unmarshal([]byte(oldKeys), &o) != nil || json.Unmarshal([]byte(newKeys), &n) != nil {
		return true
	}
	sortKeys := func(ks []map[string]any) {
		sort.SliceStable(ks, func(i, j int) bool { return fmt.Sprint(ks[i]["kid"]) < fmt.Sprint(ks[j]["kid"]) })
	}
	sortKeys(o.Keys)
	sortKeys(n.Keys)
	return !reflect.DeepEqual(o.Keys, n.Keys)
}
