package router

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluice-mesh/sluice/internal/hostport"
)

// ActionKind says what a route does with a request.
type ActionKind uint8

// Route actions.
const (
	Forward ActionKind = iota
	Redirect
	DirectResponse
)

// Action is a route's compiled action.
type Action struct {
	Kind ActionKind

	// Forward
	Cluster  string
	Weighted []WeightedCluster
	total    uint64
	// PrefixRewrite replaces the matched part of the path; set means
	// HasPrefixRewrite (an empty rewrite is meaningful).
	PrefixRewrite    string
	HasPrefixRewrite bool
	RegexRewrite     *regexp.Regexp
	RegexSubstitute  string
	HostRewrite      string
	// ClusterNotFoundStatus answers a request whose cluster does not
	// exist (cluster_not_found_response_code; 503 when 0).
	ClusterNotFoundStatus int
	// The route action's timeout, retry_policy, request_mirror_policies
	// and hash_policy are the router filter's per-route config
	// (filters/router).
	// Upgrades are the route's upgrade_configs: upgrade type (lower case)
	// to enabled, overriding the connection manager's (nil: none).
	Upgrades map[string]bool
	// Connect terminates CONNECT: the route's upgrade_configs enable
	// CONNECT with a connect_config, so the proxy answers 200 and tunnels
	// the connection's bytes as TCP to a host of the cluster (Envoy's
	// "CONNECT termination").
	Connect bool

	// Redirect
	Redirect *RedirectAction

	// DirectResponse
	Status int
	Body   []byte
}

// WeightedCluster is one arm of a weighted split (its header edits are
// the router filter's config).
type WeightedCluster struct {
	Name   string
	Weight uint64
}

// RedirectAction is a compiled Envoy redirect.
type RedirectAction struct {
	Scheme, Host, Path, PrefixRewrite string
	HasPrefixRewrite                  bool
	Port                              uint32
	Code                              int
	StripQuery                        bool
}

var redirectStatus = map[route.RedirectAction_RedirectResponseCode]int{
	route.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
	route.RedirectAction_FOUND:              http.StatusFound,
	route.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
	route.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
	route.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
}

func compileAction(r *route.Route) (Action, error) {
	switch a := r.Action.(type) {
	case *route.Route_Route:
		return compileForward(a.Route)
	case *route.Route_Redirect:
		rd := a.Redirect
		ra := &RedirectAction{Host: rd.HostRedirect, Port: rd.PortRedirect, Code: redirectStatus[rd.ResponseCode], StripQuery: rd.StripQuery}
		if s, ok := rd.SchemeRewriteSpecifier.(*route.RedirectAction_SchemeRedirect); ok {
			ra.Scheme = s.SchemeRedirect
		}
		if rd.GetHttpsRedirect() {
			ra.Scheme = "https"
		}
		switch p := rd.PathRewriteSpecifier.(type) {
		case *route.RedirectAction_PathRedirect:
			ra.Path = p.PathRedirect
		case *route.RedirectAction_PrefixRewrite:
			ra.PrefixRewrite, ra.HasPrefixRewrite = p.PrefixRewrite, true
		case *route.RedirectAction_RegexRewrite:
			return Action{}, fmt.Errorf("redirect: regex_rewrite is not supported")
		}
		return Action{Kind: Redirect, Redirect: ra}, nil
	case *route.Route_DirectResponse:
		act := Action{Kind: DirectResponse, Status: int(a.DirectResponse.Status)}
		if b := a.DirectResponse.GetBody(); b != nil {
			switch {
			case b.GetInlineString() != "":
				act.Body = []byte(b.GetInlineString())
			case b.GetInlineBytes() != nil:
				act.Body = b.GetInlineBytes()
			case b.GetFilename() != "" || b.GetEnvironmentVariable() != "":
				return Action{}, fmt.Errorf("direct_response: only inline bodies are supported")
			}
		}
		return act, nil
	}
	return Action{}, fmt.Errorf("unsupported route action %T", r.Action)
}

func compileForward(ra *route.RouteAction) (Action, error) {
	act := Action{Kind: Forward}
	switch c := ra.ClusterSpecifier.(type) {
	case *route.RouteAction_Cluster:
		act.Cluster = c.Cluster
	case *route.RouteAction_WeightedClusters:
		for _, wc := range c.WeightedClusters.Clusters {
			w := uint64(wc.GetWeight().GetValue())
			act.Weighted = append(act.Weighted, WeightedCluster{Name: wc.Name, Weight: w})
			act.total += w
		}
		if act.total == 0 {
			return act, fmt.Errorf("weighted clusters: total weight is 0")
		}
	default:
		return act, fmt.Errorf("unsupported cluster specifier %T", c)
	}
	switch h := ra.HostRewriteSpecifier.(type) {
	case *route.RouteAction_HostRewriteLiteral:
		act.HostRewrite = h.HostRewriteLiteral
	case nil:
	default:
		return act, fmt.Errorf("unsupported host rewrite %T", h)
	}
	switch ra.ClusterNotFoundResponseCode {
	case route.RouteAction_SERVICE_UNAVAILABLE:
	case route.RouteAction_NOT_FOUND:
		act.ClusterNotFoundStatus = http.StatusNotFound
	case route.RouteAction_INTERNAL_SERVER_ERROR:
		act.ClusterNotFoundStatus = http.StatusInternalServerError
	default:
		return act, fmt.Errorf("cluster_not_found_response_code %v is not supported", ra.ClusterNotFoundResponseCode)
	}
	if ra.PrefixRewrite != "" {
		act.PrefixRewrite, act.HasPrefixRewrite = ra.PrefixRewrite, true
	}
	for i, u := range ra.UpgradeConfigs {
		if err := compileConnectConfig(&act, u); err != nil {
			return act, fmt.Errorf("upgrade_configs[%d]: %w", i, err)
		}
		if act.Upgrades == nil {
			act.Upgrades = map[string]bool{}
		}
		// Envoy: a route's upgrade config is enabled unless it says not.
		act.Upgrades[strings.ToLower(u.UpgradeType)] = u.Enabled == nil || u.Enabled.Value
	}
	if rr := ra.RegexRewrite; rr != nil {
		re, err := regexpCompile(rr.GetPattern().GetRegex())
		if err != nil {
			return act, fmt.Errorf("regex_rewrite: %w", err)
		}
		act.RegexRewrite, act.RegexSubstitute = re, envoySubstitution(rr.Substitution)
	}
	return act, nil
}

func regexpCompile(p string) (*regexp.Regexp, error) { return regexp.Compile(p) }

// envoySubstitution turns Envoy's "\1" capture references into Go's "${1}".
func envoySubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// PickCluster chooses the cluster for one request: the only one (arm -1),
// or one arm of a weighted split (its index) at random in proportion to
// the weights.
func (a *Action) PickCluster() (name string, arm int) {
	if a.Weighted == nil {
		return a.Cluster, -1
	}
	n := rand.Uint64N(a.total)
	for i := range a.Weighted {
		w := &a.Weighted[i]
		if n < w.Weight {
			return w.Name, i
		}
		n -= w.Weight
	}
	last := len(a.Weighted) - 1
	return a.Weighted[last].Name, last
}

// RewritePath applies the route's path rewrites to path (without query).
func (rt *Route) RewritePath(path string) string {
	a := &rt.Action
	switch {
	case a.RegexRewrite != nil:
		return a.RegexRewrite.ReplaceAllString(path, a.RegexSubstitute)
	case a.HasPrefixRewrite:
		n := rt.path.matchedPrefixLen(path)
		if n > len(path) {
			n = len(path)
		}
		out := a.PrefixRewrite + path[n:]
		if out == "" {
			return "/"
		}
		return out
	}
	return path
}

// Location builds the Location of a redirect for request r.
func (rt *Route) Location(r *http.Request) string {
	rd := rt.Action.Redirect
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	origScheme := scheme
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	host, port := hostport.Split(r.Host)
	if rd.Host != "" {
		h, p := hostport.Split(rd.Host)
		host = h
		if p != "" {
			port = p
		}
	}
	if rd.Port != 0 {
		port = strconv.FormatUint(uint64(rd.Port), 10)
	} else if scheme != origScheme && port == defaultPort(origScheme) {
		port = "" // Envoy drops the old scheme's default port on a scheme change
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	path := RequestPath(r)
	query := r.URL.RawQuery
	switch {
	case rd.Path != "":
		path = rd.Path
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path, query = path[:i], path[i+1:]
		}
	case rd.HasPrefixRewrite:
		n := rt.path.matchedPrefixLen(path)
		if n > len(path) {
			n = len(path)
		}
		path = rd.PrefixRewrite + path[n:]
		if path == "" {
			path = "/"
		}
	}
	if rd.StripQuery {
		query = ""
	}
	loc := scheme + "://" + host
	if port != "" {
		loc += ":" + port
	}
	loc += path
	if query != "" {
		loc += "?" + query
	}
	return loc
}

// RedirectCode is the status of a redirect (301 unless configured).
func (rt *Route) RedirectCode() int {
	if c := rt.Action.Redirect.Code; c != 0 {
		return c
	}
	return http.StatusMovedPermanently
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}
