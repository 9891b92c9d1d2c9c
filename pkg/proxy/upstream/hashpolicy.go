package upstream

import (
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// HashPolicy is a route's compiled Envoy hash_policy: how a request's hash
// key for ring hash and maglev clusters is made from its headers, cookies,
// query or source address. Istio writes one from a DestinationRule's
// consistentHash on the routes that go to that destination.
type HashPolicy struct {
	parts []hashPart
}

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

type hashPart struct {
	kind hashKind
	// name is the canonical header name, the cookie name or the query
	// parameter name.
	name string
	// pseudo is a request pseudo-header (":authority", ":path", ":method")
	// read from the request line instead of the header map.
	pseudo string
	// cookie generation
	path     string
	ttl      time.Duration
	hasTTL   bool
	terminal bool
}

// CompileHashPolicy compiles a route's hash policies. Policies sluice does
// not implement (filter_state, header regex rewrites, cookie attributes)
// are errors, so the proxy NACKs rather than hashing on something else.
func CompileHashPolicy(in []*route.RouteAction_HashPolicy) (*HashPolicy, error) {
	if len(in) == 0 {
		return nil, nil
	}
	hp := &HashPolicy{}
	for i, p := range in {
		part := hashPart{terminal: p.Terminal}
		switch s := p.PolicySpecifier.(type) {
		case *route.RouteAction_HashPolicy_Header_:
			if s.Header.RegexRewrite != nil {
				return nil, fmt.Errorf("hash_policy[%d]: header regex_rewrite is not supported", i)
			}
			part.kind = hashHeader
			name := strings.ToLower(s.Header.HeaderName)
			if strings.HasPrefix(name, ":") {
				switch name {
				case ":authority", ":path", ":method", ":scheme":
					part.pseudo = name
				default:
					return nil, fmt.Errorf("hash_policy[%d]: pseudo-header %q is not supported", i, name)
				}
			} else if name == "host" {
				part.pseudo = ":authority"
			}
			part.name = textproto.CanonicalMIMEHeaderKey(name)
		case *route.RouteAction_HashPolicy_Cookie_:
			if len(s.Cookie.Attributes) > 0 {
				return nil, fmt.Errorf("hash_policy[%d]: cookie attributes are not supported", i)
			}
			part.kind = hashCookie
			part.name = s.Cookie.Name
			part.path = s.Cookie.Path
			if s.Cookie.Ttl != nil {
				part.hasTTL = true
				part.ttl = s.Cookie.Ttl.AsDuration()
			}
		case *route.RouteAction_HashPolicy_ConnectionProperties_:
			if !s.ConnectionProperties.SourceIp {
				continue // hashes nothing
			}
			part.kind = hashSourceIP
		case *route.RouteAction_HashPolicy_QueryParameter_:
			part.kind = hashQuery
			part.name = s.QueryParameter.Name
		default:
			return nil, fmt.Errorf("hash_policy[%d]: %T is not supported", i, s)
		}
		hp.parts = append(hp.parts, part)
	}
	if len(hp.parts) == 0 {
		return nil, nil
	}
	return hp, nil
}

// HashResult is a request's hash key and, when a cookie policy with a TTL
// found no cookie, the Set-Cookie value the response must carry.
type HashResult struct {
	Key       uint64
	OK        bool
	SetCookie string
}

// Hash computes r's hash key as Envoy does: each policy that yields a value
// is folded in (the running hash rotated left by one, xor the new hash); a
// terminal policy that yielded a value ends the walk.
func (p *HashPolicy) Hash(r *http.Request) HashResult {
	var res HashResult
	if p == nil {
		return res
	}
	for i := range p.parts {
		part := &p.parts[i]
		h, ok := part.evaluate(r, &res)
		if ok {
			old := uint64(0)
			if res.OK {
				old = res.Key<<1 | res.Key>>63
			}
			res.Key = old ^ h
			res.OK = true
		}
		if part.terminal && res.OK {
			break
		}
	}
	return res
}

func (part *hashPart) evaluate(r *http.Request, res *HashResult) (uint64, bool) {
	switch part.kind {
	case hashHeader:
		if part.pseudo != "" {
			v := pseudoHeader(r, part.pseudo)
			if v == "" {
				return 0, false
			}
			return XXHash64String(v), true
		}
		vs := r.Header[part.name]
		switch len(vs) {
		case 0:
			return 0, false
		case 1:
			return XXHash64String(vs[0]), true
		}
		// Envoy hashes every value, sorted, so the order they came in
		// does not matter.
		sorted := append([]string(nil), vs...)
		sort.Strings(sorted)
		h := uint64(0)
		for _, v := range sorted {
			h = XXHash64(stringBytes(v), h)
		}
		return h, true
	case hashCookie:
		if v := cookieValue(r.Header["Cookie"], part.name); v != "" {
			return XXHash64String(v), true
		}
		if !part.hasTTL {
			return 0, false
		}
		v := generatedCookie(r)
		res.SetCookie = setCookieValue(part.name, v, part.path, part.ttl)
		return XXHash64String(v), true
	case hashSourceIP:
		ip := r.RemoteAddr
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
		if ip == "" {
			return 0, false
		}
		return XXHash64String(ip), true
	case hashQuery:
		if v, ok := queryValue(r.URL.RawQuery, part.name); ok {
			return XXHash64String(v), true
		}
	}
	return 0, false
}

func pseudoHeader(r *http.Request, name string) string {
	switch name {
	case ":authority":
		return r.Host
	case ":path":
		return r.RequestURI
	case ":method":
		return r.Method
	case ":scheme":
		if r.TLS != nil {
			return "https"
		}
		return "http"
	}
	return ""
}

// generatedCookie is Envoy's value for a cookie it sets itself: the hex of
// xxHash64(remote address + local address) of the downstream connection,
// so streams racing on one connection get the same cookie.
func generatedCookie(r *http.Request) string {
	local := ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	h := XXHash64String(r.RemoteAddr + local)
	s := strconv.FormatUint(h, 16)
	return strings.Repeat("0", 16-len(s)) + s
}

// setCookieValue formats Set-Cookie as Envoy's makeSetCookieValue does:
// quoted value, Max-Age unless the TTL is zero (a session cookie), Path
// when given, HttpOnly.
func setCookieValue(name, value, path string, ttl time.Duration) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(`="`)
	b.WriteString(value)
	b.WriteByte('"')
	if secs := int64(ttl / time.Second); secs != 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(secs, 10))
	}
	if path != "" {
		b.WriteString("; Path=")
		b.WriteString(path)
	}
	b.WriteString("; HttpOnly")
	return b.String()
}

// cookieValue finds a cookie's value in Cookie headers without parsing
// every cookie; surrounding double quotes are dropped as Envoy does.
func cookieValue(headers []string, name string) string {
	for _, line := range headers {
		for len(line) > 0 {
			var part string
			if i := strings.IndexByte(line, ';'); i >= 0 {
				part, line = line[:i], line[i+1:]
			} else {
				part, line = line, ""
			}
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || strings.TrimSpace(k) != name {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// queryValue returns the first raw (undecoded) value of a query parameter,
// as Envoy's query parameter hash reads it.
func queryValue(raw, name string) (string, bool) {
	for len(raw) > 0 {
		var kv string
		if i := strings.IndexByte(raw, '&'); i >= 0 {
			kv, raw = raw[:i], raw[i+1:]
		} else {
			kv, raw = raw, ""
		}
		k, v, _ := strings.Cut(kv, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}
