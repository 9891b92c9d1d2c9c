package rbac

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// Every decision is explained: counted (Envoy's names, plus a denied
// counter per policy), logged (INFO for denials, shadow denials and
// audits), kept in a bounded ring of recent decisions (the proxy's
// /debug/authz) and, only when the proxy is started with
// --authz-explain-header, named in a response header.

// ExplainHeader is the response header naming the deciding policy of a
// denied request, sent only when Options.ExplainHeader is set.
const ExplainHeader = "X-Sluice-Authz"

// ringSize bounds the recent decisions kept.
const ringSize = 256

// Options are a proxy's settings for its RBAC filters.
type Options struct {
	// ExplainHeader makes a denied request's answer name the deciding
	// policy in ExplainHeader (off by default: policy names tell a caller
	// about the server's policies).
	ExplainHeader bool
	// Logger receives the decision log lines (slog.Default when nil).
	Logger *slog.Logger
}

// Decision is one RBAC decision.
type Decision struct {
	Time time.Time `json:"time"`
	// Kind is "http" (envoy.filters.http.rbac) or "tcp" (the network filter).
	Kind string `json:"kind"`
	// Filter is the stat prefix: the connection manager's, or the network
	// filter's.
	Filter string `json:"filter"`
	// Action is the engine's action (ALLOW, DENY, LOG).
	Action string `json:"action"`
	// Shadow: a dry-run decision (shadow_rules), never enforced.
	Shadow bool `json:"shadow,omitempty"`
	// Allowed is the engine's result (for LOG always true).
	Allowed bool `json:"allowed"`
	// Policy is the deciding policy; "" when none matched.
	Policy string `json:"policy,omitempty"`
	// Reason is the decision in words (filled by Recent).
	Reason    string         `json:"reason"`
	Method    string         `json:"method,omitempty"`
	Authority string         `json:"authority,omitempty"`
	Path      string         `json:"path,omitempty"`
	Source    netip.AddrPort `json:"source"`
	Principal string         `json:"principal,omitempty"`
}

// Reason says why an engine decided as it did.
func Reason(a Action, allowed bool, policy string) string {
	switch {
	case a == Log && policy != "":
		return "audited by LOG policy " + policy
	case a == Log:
		return "no LOG policy matched"
	case a == Allow && allowed:
		return "allowed by ALLOW policy " + policy
	case a == Allow:
		return "no ALLOW policy matched"
	case !allowed:
		return "denied by DENY policy " + policy
	}
	return "no DENY policy matched"
}

func (d *Decision) reason() string {
	a := Allow
	switch d.Action {
	case "DENY":
		a = Deny
	case "LOG":
		a = Log
	}
	return Reason(a, d.Allowed, d.Policy)
}

// Shared is a proxy's RBAC state across config pushes: its options, the
// network filters' counters (by stat prefix) and the recent decisions. It
// is the filter's proxy-wide entry of the proxy's httpfilter.Scope.
type Shared struct {
	explain atomic.Bool
	logger  atomic.Pointer[slog.Logger]
	tcp     sync.Map // stat prefix -> *Stats

	mu   sync.Mutex
	ring [ringSize]Decision
	next int
	n    int
}

// Configure sets a proxy's RBAC options in its scope.
func Configure(sc *httpfilter.Scope, o Options) {
	sh := shared(sc)
	sh.explain.Store(o.ExplainHeader)
	if o.Logger != nil {
		sh.logger.Store(o.Logger)
	}
}

func shared(sc *httpfilter.Scope) *Shared { return sc.Filter(slot).(*Shared) }

func (sh *Shared) log() *slog.Logger {
	if l := sh.logger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

func (sh *Shared) record(d *Decision) {
	sh.mu.Lock()
	sh.ring[sh.next] = *d
	sh.next = (sh.next + 1) % ringSize
	if sh.n < ringSize {
		sh.n++
	}
	sh.mu.Unlock()
}

// Recent are the recent decisions, newest first.
func Recent(sc *httpfilter.Scope) []Decision {
	sh := shared(sc)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]Decision, 0, sh.n)
	for i := 1; i <= sh.n; i++ {
		d := sh.ring[(sh.next-i+ringSize)%ringSize]
		d.Reason = d.reason()
		out = append(out, d)
	}
	return out
}

// WriteDebug writes the recent decisions as the proxy's /debug/authz
// shows them: one line each, newest first, or JSON.
func WriteDebug(w io.Writer, sc *httpfilter.Scope, asJSON bool) {
	ds := Recent(sc)
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(ds)
		return
	}
	if len(ds) == 0 {
		fmt.Fprintln(w, "no RBAC decisions yet")
		return
	}
	for _, d := range ds {
		verdict := "allowed"
		if !d.Allowed {
			verdict = "denied"
		}
		if d.Shadow {
			verdict = "shadow " + verdict
		}
		fmt.Fprintf(w, "%s %s %s %s %s: %s", d.Time.Format(time.RFC3339Nano), d.Kind, d.Filter, d.Action, verdict, d.Reason)
		if d.Method != "" {
			fmt.Fprintf(w, "; %s %s%s", d.Method, d.Authority, d.Path)
		}
		fmt.Fprintf(w, "; source %s", d.Source)
		if d.Principal != "" {
			fmt.Fprintf(w, " principal %s", d.Principal)
		}
		fmt.Fprintln(w)
	}
}

// logDecision logs a decision worth a line: a denial or shadow denial at
// INFO, an audit (LOG policy matched) at INFO, the rest at DEBUG.
func (sh *Shared) logDecision(d *Decision) {
	l := sh.log()
	level := slog.LevelDebug
	msg := "rbac: allowed"
	switch {
	case d.Shadow && !d.Allowed:
		level, msg = slog.LevelInfo, "rbac: shadow denied"
	case d.Shadow:
		msg = "rbac: shadow allowed"
	case !d.Allowed:
		level, msg = slog.LevelInfo, "rbac: denied"
	case d.Action == "LOG" && d.Policy != "":
		level, msg = slog.LevelInfo, "rbac: audit"
	}
	if !l.Enabled(context.Background(), level) {
		return
	}
	attrs := []slog.Attr{slog.String("kind", d.Kind), slog.String("filter", d.Filter), slog.String("policy", d.Policy),
		slog.String("reason", d.reason()), slog.String("principal", d.Principal), slog.String("source", d.Source.String())}
	if d.Method != "" {
		attrs = append(attrs, slog.String("method", d.Method), slog.String("authority", d.Authority), slog.String("path", d.Path))
	}
	l.LogAttrs(context.Background(), level, msg, attrs...)
}

// Stats are one stat scope's RBAC counters by name (Envoy's names under
// <scope>rbac.: [rules_stat_prefix]allowed, [rules_stat_prefix]denied,
// [shadow_rules_stat_prefix]shadow_allowed, [..]shadow_denied, and
// sluice's policy.<policy>.denied and policy.<policy>.shadow_denied).
// Several RBAC filters of one connection manager share them, as Envoy's
// counters are shared by name.
type Stats struct{ m sync.Map }

func (s *Stats) inc(name string) {
	c, ok := s.m.Load(name)
	if !ok {
		c, _ = s.m.LoadOrStore(name, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

// Get reads a counter by its name under rbac. ("denied").
func (s *Stats) Get(name string) uint64 {
	if c, ok := s.m.Load(name); ok {
		return c.(*atomic.Uint64).Load()
	}
	return 0
}

func (s *Stats) write(w io.Writer, prefix string) {
	vals := map[string]uint64{}
	s.m.Range(func(k, v any) bool {
		vals[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		fmt.Fprintf(w, "%srbac.%s: %d\n", prefix, k, vals[k])
	}
}

// WriteText writes a connection manager's counters (http.<prefix>.rbac.*).
func (s *Stats) WriteText(w io.Writer, prefix string) { s.write(w, "http."+prefix+".") }

// WriteText writes the network filters' counters (<stat_prefix>rbac.*).
func (sh *Shared) WriteText(w io.Writer, _ string) {
	var prefixes []string
	sh.tcp.Range(func(k, _ any) bool { prefixes = append(prefixes, k.(string)); return true })
	slices.Sort(prefixes)
	for _, p := range prefixes {
		v, _ := sh.tcp.Load(p)
		v.(*Stats).write(w, p)
	}
}

// tcpStats are the counters of a network filter's stat prefix.
func (sh *Shared) tcpStats(prefix string) *Stats {
	v, ok := sh.tcp.Load(prefix)
	if !ok {
		v, _ = sh.tcp.LoadOrStore(prefix, &Stats{})
	}
	return v.(*Stats)
}
