package jwtauthn

import "sync"

// verifiedCache holds a provider's tokens whose signature verified, so a
// client reusing its token (the common case) costs one lookup instead of
// a signature check and a parse: Envoy's per-provider JwtCache
// (jwt_cache.cc), here always on. It is sound because a compiled
// provider's keys never change (a new config compiles a new provider with
// an empty cache) and only the signature is cached: time, issuer and
// audiences are checked on every request. Bounded: when full it starts
// over; tokens longer than Envoy's default jwt_max_token_size are not
// kept. Cached tokens are shared by requests and never written.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]*token
}

const (
	verifiedCacheSize = 1024
	maxCachedToken    = 4096
)

func (c *verifiedCache) get(raw string) *token {
	c.mu.RLock()
	t := c.m[raw]
	c.mu.RUnlock()
	return t
}

func (c *verifiedCache) put(t *token) {
	if len(t.raw) > maxCachedToken {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= verifiedCacheSize {
		c.m = make(map[string]*token, 64)
	}
	c.m[t.raw] = t
	c.mu.Unlock()
}
