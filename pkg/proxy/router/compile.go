package router

import (
	"fmt"
	"sort"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// CompileOptions are the inputs of CompileWith.
type CompileOptions struct {
	// Config is the route configuration as RDS gave it.
	Config *route.RouteConfiguration
	// VHDSResolved says the caller resolved Config's vhds: VHDS holds
	// the virtual hosts VHDS gave it (the xDS client follows vhds over
	// Delta xDS). A vhds not resolved is NACKed.
	VHDSResolved bool
	// VHDS are Config's virtual hosts from VHDS, in the order they follow
	// its own (by name, Envoy's rebuildRouteConfig). They are validated
	// here (ValidateAll), as Config's are by the caller.
	VHDS []*route.VirtualHost
	// Previous is the table compiled from this configuration before, or
	// nil: a virtual host that is the message it compiled (or an equal
	// one) is taken from it as compiled, so a VHDS update that changed one
	// virtual host compiles that one.
	Previous *Table
}

// source is one virtual host of a table and the message it came from.
type source struct {
	msg *route.VirtualHost
	vh  *VirtualHost
}

// Compile builds a Table; any route it cannot honour is an error, so the
// proxy NACKs config it would otherwise silently ignore.
func Compile(rc *route.RouteConfiguration) (*Table, error) {
	return CompileWith(CompileOptions{Config: rc})
}

// CompileWith builds a Table from a route configuration and, with vhds,
// its VHDS virtual hosts: the configuration's own virtual hosts first,
// then the VHDS ones (Envoy's RouteConfigUpdateReceiverImpl::rebuildRouteConfig).
func CompileWith(opts CompileOptions) (*Table, error) {
	rc := opts.Config
	t := &Table{Name: rc.Name, exact: map[string]*VirtualHost{}}
	if err := checkRouteConfig(rc, opts.VHDSResolved); err != nil {
		return nil, fmt.Errorf("route config %q: %w", rc.Name, err)
	}
	var prev map[string]source
	if opts.Previous != nil {
		prev = make(map[string]source, len(opts.Previous.sources))
		for _, s := range opts.Previous.sources {
			prev[s.msg.Name] = s
		}
	}
	t.sources = make([]source, 0, len(rc.VirtualHosts)+len(opts.VHDS))
	for i, list := range [][]*route.VirtualHost{rc.VirtualHosts, opts.VHDS} {
		fromVHDS := i == 1
		for _, vh := range list {
			cvh, err := t.virtualHost(vh, prev, fromVHDS)
			if err != nil {
				return nil, fmt.Errorf("route config %q: virtual host %q: %w", rc.Name, vh.Name, err)
			}
			if err := t.addDomains(cvh, vh.Domains); err != nil {
				return nil, fmt.Errorf("route config %q: %w", rc.Name, err)
			}
			t.sources = append(t.sources, source{msg: vh, vh: cvh})
		}
	}
	t.vhdsCount = len(opts.VHDS)
	sort.SliceStable(t.suffixes, func(i, j int) bool { return len(t.suffixes[i].part) > len(t.suffixes[j].part) })
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].part) > len(t.prefixes[j].part) })
	return t, nil
}

// virtualHost is vh compiled, or taken from prev when it compiled the same
// (or an equal) message.
func (t *Table) virtualHost(vh *route.VirtualHost, prev map[string]source, fromVHDS bool) (*VirtualHost, error) {
	if p, ok := prev[vh.Name]; ok && (p.msg == vh || proto.Equal(p.msg, vh)) {
		t.VirtualHostsReused++
		return p.vh, nil
	}
	if fromVHDS {
		if err := vh.ValidateAll(); err != nil {
			return nil, err
		}
	}
	cvh, err := compileVirtualHost(vh)
	if err != nil {
		return nil, err
	}
	t.VirtualHostsCompiled++
	return cvh, nil
}

// compileVirtualHost compiles one virtual host and its routes.
func compileVirtualHost(vh *route.VirtualHost) (*VirtualHost, error) {
	if err := checkVirtualHost(vh); err != nil {
		return nil, err
	}
	cvh := &VirtualHost{Name: vh.Name}
	switch vh.RequireTls {
	case route.VirtualHost_NONE:
	case route.VirtualHost_ALL:
		cvh.tlsRedirect = &Route{Name: "require_tls", VHost: vh.Name, path: pathMatch{kind: 'p', value: "/", caseSensitive: true},
			Action: Action{Kind: Redirect, Redirect: &RedirectAction{Scheme: "https", Code: 301}}}
	default:
		// EXTERNAL_ONLY exempts requests Envoy deems internal
		// (x-envoy-internal), which the proxy does not track.
		return nil, fmt.Errorf("require_tls %v: only ALL is supported", vh.RequireTls)
	}
	for i, r := range vh.Routes {
		cr, err := compileRoute(r, vh)
		if err != nil {
			return nil, fmt.Errorf("route %d (%q): %w", i, r.Name, err)
		}
		cvh.Routes = append(cvh.Routes, cr)
	}
	return cvh, nil
}

// addDomains indexes a virtual host by its domains.
func (t *Table) addDomains(cvh *VirtualHost, domains []string) error {
	for _, d := range domains {
		d = strings.ToLower(d)
		switch {
		case d == "*":
			if t.any != nil {
				return fmt.Errorf("domain \"*\" in two virtual hosts")
			}
			t.any = cvh
		case strings.HasPrefix(d, "*"):
			t.suffixes = append(t.suffixes, wildcard{part: d[1:], vh: cvh})
		case strings.HasSuffix(d, "*"):
			t.prefixes = append(t.prefixes, wildcard{part: d[:len(d)-1], vh: cvh})
		default:
			if _, dup := t.exact[d]; dup {
				return fmt.Errorf("domain %q in two virtual hosts", d)
			}
			t.exact[d] = cvh
		}
	}
	return nil
}

// SameVHDS reports whether vhosts are the very VHDS virtual hosts (the
// same messages, in order) the table was compiled with: the xDS client
// keeps the messages of virtual hosts a response did not change.
func (t *Table) SameVHDS(vhosts []*route.VirtualHost) bool {
	if len(vhosts) != t.vhdsCount {
		return false
	}
	own := t.sources[len(t.sources)-t.vhdsCount:]
	for i, vh := range vhosts {
		if own[i].msg != vh {
			return false
		}
	}
	return true
}

// Len is the number of virtual hosts in the table.
func (t *Table) Len() int { return len(t.sources) }

// VirtualHostNames are the table's virtual hosts in order: the route
// configuration's own, then its VHDS ones.
func (t *Table) VirtualHostNames() []string {
	out := make([]string, len(t.sources))
	for i, s := range t.sources {
		out[i] = s.vh.Name
	}
	return out
}
