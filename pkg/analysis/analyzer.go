package analysis

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// Analyzer is one check over a snapshot, named as Istio names it
// (analysis.Metadata.Name) so that `--analyzer` and test data can pick it.
type Analyzer struct {
	Name string
	// Aliases are other names the analyzer is known by: the Go type name
	// of Istio's implementation where it differs from Name.
	Aliases     []string
	Description string
	// Codes are the message codes the analyzer can report.
	Codes []string
	// Workloads marks an analyzer that needs Kubernetes workload objects
	// (Pods, Deployments, Nodes) to say anything true: `sluice control`'s
	// config folder holds none, so the control plane's continuous
	// analysis skips it (ControlPlaneAnalyzers).
	Workloads bool
	run       func(c *Context)
}

// Context is what an analyzer reads and reports to.
type Context struct {
	*Snapshot
	// IstioNamespace is the control plane's namespace (istio-system).
	IstioNamespace string
	messages       []Message
}

// report records a message of type t about o. path, when not empty, is
// the field the message is about ("{.spec.gateways[0]}"): its line
// replaces the document's in the message's origin, as Istio's ErrorLine.
func (c *Context) report(t *MessageType, o *Object, path string, args ...any) {
	origin := o.Origin
	if path != "" {
		if line, ok := o.errorLine(path); ok {
			origin.Line = line
		}
	}
	c.messages = append(c.messages, Message{Type: t, Resource: o.Ref(), Origin: origin, Args: args})
}

// analyzers lists every analyzer, filled by each analyzer file's init.
var analyzers []*Analyzer

func register(a *Analyzer) { analyzers = append(analyzers, a) }

// Analyzers returns every analyzer, ordered by name.
func Analyzers() []*Analyzer {
	out := append([]*Analyzer(nil), analyzers...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ControlPlaneAnalyzers names the analyzers the control plane runs on
// every config change: all but those needing workload objects.
func ControlPlaneAnalyzers() []string {
	var out []string
	for _, a := range Analyzers() {
		if !a.Workloads {
			out = append(out, a.Name)
		}
	}
	return out
}

// AnalyzerByName returns the analyzer with the name or alias.
func AnalyzerByName(name string) (*Analyzer, bool) {
	for _, a := range analyzers {
		if a.Name == name {
			return a, true
		}
		for _, alias := range a.Aliases {
			if alias == name {
				return a, true
			}
		}
	}
	return nil, false
}

// Suppression drops the messages of Code about resources whose friendly
// name ("Kind ns/name") matches Resource, where '*' matches any text
// (istioctl analyze --suppress).
type Suppression struct {
	Code     string
	Resource string
}

// ParseSuppression reads istioctl's "CODE=Kind ns/name" form.
func ParseSuppression(s string) (Suppression, error) {
	code, res, ok := strings.Cut(s, "=")
	if !ok || code == "" || res == "" || strings.Contains(res, "=") {
		return Suppression{}, fmt.Errorf("suppression %q: want CODE=Kind ns/name, e.g. IST0102=Namespace default", s)
	}
	return Suppression{Code: code, Resource: res}, nil
}

// SuppressAnnotation lists codes ("*" for all) an object's messages omit
// (annotation galley.istio.io/analyze-suppress).
const SuppressAnnotation = "galley.istio.io/analyze-suppress"

// RunOptions say which analyzers run and which messages are kept.
type RunOptions struct {
	// Analyzers names the analyzers to run; empty runs them all.
	Analyzers []string
	// Namespace keeps only messages about resources in it (and about
	// cluster-scoped ones); empty keeps all.
	Namespace string
	// IstioNamespace is the control plane's namespace; "istio-system"
	// when empty.
	IstioNamespace string
	Suppressions   []Suppression
}

// Run runs the analyzers over s and returns their messages, filtered,
// sorted and deduplicated as istiod's analyzer does
// (local/istiod_analyze.go internalAnalyze, filterMessages).
func Run(s *Snapshot, opts RunOptions) ([]Message, error) {
	selected := analyzers
	if len(opts.Analyzers) > 0 {
		selected = nil
		for _, name := range opts.Analyzers {
			a, ok := AnalyzerByName(name)
			if !ok {
				return nil, fmt.Errorf("analyzer %q: no such analyzer (sluice analyze --list-analyzers lists them)", name)
			}
			selected = append(selected, a)
		}
	}
	if len(opts.Analyzers) == 0 && !s.HasWorkloads() {
		// Without Pods or Deployments in the input (a local mesh's folder)
		// the analyzers that read them would call every selector empty;
		// they run when the input has some, or when named.
		selected = slices.DeleteFunc(slices.Clone(selected), func(a *Analyzer) bool { return a.Workloads })
	}
	c := &Context{Snapshot: s, IstioNamespace: opts.IstioNamespace}
	if c.IstioNamespace == "" {
		c.IstioNamespace = "istio-system"
	}
	for _, a := range selected {
		a.run(c)
	}
	var kept []Message
	for _, m := range c.messages {
		if keep(s, m, opts) {
			kept = append(kept, m)
		}
	}
	return SortMessages(kept), nil
}

func keep(s *Snapshot, m Message, opts RunOptions) bool {
	if opts.Namespace != "" && m.Resource.Namespace != "" && m.Resource.Namespace != opts.Namespace {
		return false
	}
	if o := s.byKey[config.Key{Kind: config.Kind(m.Resource.Kind), Namespace: m.Resource.Namespace, Name: m.Resource.Name}]; o != nil {
		if codes := o.Annotations[SuppressAnnotation]; codes != "" {
			for _, code := range strings.Split(codes, ",") {
				if code == "*" || code == m.Code() {
					return false
				}
			}
		}
	}
	for _, sup := range opts.Suppressions {
		if sup.Code == m.Code() && glob(sup.Resource, m.Resource.String()) {
			return false
		}
	}
	return true
}

// glob matches s against pattern, where '*' matches any run of
// characters (github.com/ryanuber/go-glob, which istioctl uses).
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
