package conformance

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// EnvCorpusDir overrides where the corpus is read from.
const EnvCorpusDir = "SLUICE_CONFORMANCE_DIR"

// corpusDir returns the corpus folder. When it is absent the test skips,
// except in CI (CI=true), where it fails: CI must not pass without
// conformance.
func corpusDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(EnvCorpusDir)
	if dir == "" {
		root, err := testenv.ModuleRoot()
		if err != nil {
			missing(t, fmt.Sprintf("conformance corpus: %v", err))
		}
		dir = filepath.Join(root, "..", "shared", "conformance")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		missing(t, fmt.Sprintf("conformance corpus not found at %s (set %s)", dir, EnvCorpusDir))
	}
	return dir
}

// missing ends a test whose corpus data is absent: a failure with CI=true,
// a skip elsewhere.
func missing(t *testing.T, why string) {
	t.Helper()
	if inCI() {
		t.Fatal(why + " (CI=true: conformance is required)")
	}
	t.Skip(why)
}

// Case is one case folder of a group.
type Case struct {
	Name string
	Dir  string
	// Expect is expect.yaml.
	Expect ExpectFile
	// Checks are the traffic checks, in file order.
	Checks []*Check
	// Data is what the group loaded for itself (backends, config).
	Data any
	// Variant, when set, is the variant this case stands for: its checks
	// are the variant's, and the group's Load applies its file and mesh
	// config (see variantCases).
	Variant *Variant
}

// ExpectFile is the part of expect.yaml the runner uses.
type ExpectFile struct {
	Case  string `json:"case"`
	Setup struct {
		Config     string `json:"config"`
		MeshConfig string `json:"mesh_config"`
	} `json:"setup"`
	Checks []json.RawMessage `json:"checks"`
	// Variants (istio-telemetry) each apply one more file over the case
	// and have checks of their own.
	Variants []Variant `json:"variants"`
}

// Variant is one expect.yaml variant: the case's config with one more file
// applied over it (a document with the same kind, namespace and name
// replaces the case's), and MeshConfig, when given, instead of the case's.
type Variant struct {
	Name       string            `json:"name"`
	Apply      string            `json:"apply"`
	MeshConfig string            `json:"mesh_config"`
	Checks     []json.RawMessage `json:"checks"`
}

// Check is one entry of expect.yaml's checks, typed, plus its raw form so
// that fields this runner does not know are noticed rather than ignored.
type Check struct {
	ID                 int              `json:"id"`
	Name               string           `json:"name"`
	Via                Via              `json:"via"`
	Request            Request          `json:"request"`
	Repeat             int              `json:"repeat"`
	MaxAttempts        int              `json:"max_attempts"`
	AllowFirstFailures int              `json:"allow_first_failures"`
	Before             []map[string]any `json:"before"`
	Load               map[string]any   `json:"load"`
	Expect             Expect           `json:"expect"`

	Raw map[string]any `json:"-"`
	// Variant names the expect.yaml variant the check belongs to ("" for
	// the case's own checks).
	Variant string `json:"-"`
}

// Via says where a check's requests enter.
type Via struct {
	MeshClient     *MeshClient     `json:"mesh_client"`
	IngressGateway *IngressGateway `json:"ingress_gateway"`
}

// IngressGateway is an Istio Gateway served by the router workload with
// those labels, entered on a Gateway port.
type IngressGateway struct {
	Selector map[string]string `json:"selector"`
	Port     int               `json:"port"`
	Protocol string            `json:"protocol"`
}

// MeshClient is an in-mesh client workload.
type MeshClient struct {
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	Locality  string `json:"locality"`
}

// Request is what a check sends.
type Request struct {
	Method          string            `json:"method"`
	Host            *string           `json:"host"`
	Port            int               `json:"port"`
	Path            string            `json:"path"`
	Headers         map[string]string `json:"headers"`
	FollowRedirects *bool             `json:"follow_redirects"`
	// TCPSend is a line sent over a plain TCP connection instead of HTTP.
	TCPSend *string `json:"tcp_send"`
	// HoldOpen is how long the connection stays open for the answer.
	HoldOpen string `json:"hold_open"`
	// URL is the full URL an egress check sends to (curl's argument).
	URL string `json:"url"`
}

// methodOrGET is the request's method, GET when the data names none.
func (r Request) methodOrGET() string {
	if r.Method == "" {
		return "GET"
	}
	return r.Method
}

// pathOrRoot is the request's path, / when the data names none.
func (r Request) pathOrRoot() string {
	if r.Path == "" {
		return "/"
	}
	return r.Path
}

// Expect is what every response (or, for fractions, all of them together)
// must satisfy.
type Expect struct {
	Status                []int                 `json:"status"`
	StatusAny             bool                  `json:"status_any"`
	Backend               *Backend              `json:"backend"`
	BackendService        string                `json:"backend_service"`
	ReachedBackend        *bool                 `json:"reached_backend"`
	BackendSaw            *BackendSaw           `json:"backend_saw"`
	AnsweredByProxy       bool                  `json:"answered_by_proxy"`
	ResponseHeaders       map[string]string     `json:"response_headers"`
	ResponseHeadersOneOf  map[string][]string   `json:"response_headers_one_of"`
	ResponseHeaderCompare string                `json:"response_header_compare"`
	ResponseAbsentHeaders []string              `json:"response_absent_headers"`
	Redirect              *Redirect             `json:"redirect"`
	Fractions             map[string][2]float64 `json:"fractions"`
	FractionBy            string                `json:"fraction_by"`
	LatencyMin            string                `json:"latency_min"`
	LatencyMax            string                `json:"latency_max"`
	// ResponsePrefix is how a TCP answer must start.
	ResponsePrefix *string `json:"response_prefix"`
	// BodyPrefix is how an HTTP answer's body must start.
	BodyPrefix *string `json:"body_prefix"`
	// ConnectionError: the client must fail to connect; ClientExitCode is
	// curl's exit code for how (35: the TLS handshake failed).
	ConnectionError bool `json:"connection_error"`
	ClientExitCode  int  `json:"client_exit_code"`

	// Load runs (Check.Load): the only status codes allowed, the least
	// number of responses with each code (keys are codes), the counts
	// upstream printed for one run (information only), and a proxy
	// statistic that must rise by at least Min over the run.
	StatusSet        []int          `json:"status_set"`
	MinCount         map[string]int `json:"min_count"`
	ObservedUpstream map[string]int `json:"observed_upstream"`
	ProxyStat        *ProxyStat     `json:"proxy_stat"`
}

// ProxyStat is an Envoy-style statistic of one cluster, read from the proxy
// the check's requests leave by.
type ProxyStat struct {
	Name    string  `json:"name"`
	Cluster string  `json:"cluster"`
	Min     float64 `json:"min"`
}

// Backend names the workload that must serve a request.
type Backend struct {
	Service       string `json:"service"`
	Version       string `json:"version"`
	ServicePrefix string `json:"service_prefix"`
	Namespace     string `json:"namespace"`
}

// BackendSaw is what the backend must have received.
type BackendSaw struct {
	Path          *string           `json:"path"`
	Host          *string           `json:"host"`
	Method        string            `json:"method"`
	Headers       map[string]string `json:"headers"`
	AbsentHeaders []string          `json:"absent_headers"`
	// HeadersContain: each header's value must contain every listed part
	// (an X-Forwarded-Client-Cert holding both SPIFFE identities).
	HeadersContain map[string][]string `json:"headers_contain"`
}

// Redirect is the expected Location of a 3xx answer. A nil Host is not
// checked; Port is checked per the raw data (null = absent or default).
type Redirect struct {
	Scheme string     `json:"scheme"`
	Host   *string    `json:"host"`
	Port   *portValue `json:"port"`
	Path   string     `json:"path"`
}

// loadCases reads every case folder of a group (folders starting with "_"
// hold shared data, not cases).
func loadCases(dir string) ([]*Case, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var cases []*Case
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "_") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		c, err := loadCase(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases, nil
}

func loadCase(dir string) (*Case, error) {
	c := &Case{Name: filepath.Base(dir), Dir: dir}
	if err := readYAML(filepath.Join(dir, "expect.yaml"), &c.Expect); err != nil {
		return nil, err
	}
	add := func(where string, raws []json.RawMessage, variant string) error {
		for i, raw := range raws {
			ch := &Check{Variant: variant}
			if err := json.Unmarshal(raw, ch); err != nil {
				return fmt.Errorf("%s: expect.yaml %s[%d]: %w", c.Name, where, i, err)
			}
			if err := json.Unmarshal(raw, &ch.Raw); err != nil {
				return fmt.Errorf("%s: expect.yaml %s[%d]: %w", c.Name, where, i, err)
			}
			c.Checks = append(c.Checks, ch)
		}
		return nil
	}
	if err := add("checks", c.Expect.Checks, ""); err != nil {
		return nil, err
	}
	for i, v := range c.Expect.Variants {
		if err := add(fmt.Sprintf("variants[%d].checks", i), v.Checks, v.Name); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// variantCases splits c: c keeps its own checks, and each variant becomes
// a case of its own, with the variant's checks, started afresh from the
// case's state (variants are independent of each other).
func variantCases(c *Case) []*Case {
	var own []*Check
	byName := map[string][]*Check{}
	for _, ch := range c.Checks {
		if ch.Variant == "" {
			own = append(own, ch)
		} else {
			byName[ch.Variant] = append(byName[ch.Variant], ch)
		}
	}
	c.Checks = own
	var out []*Case
	for i := range c.Expect.Variants {
		v := &c.Expect.Variants[i]
		vc := *c
		vc.Checks, vc.Data, vc.Variant = byName[v.Name], nil, v
		out = append(out, &vc)
	}
	return out
}

// readYAML decodes a YAML file into v (through JSON, so json tags apply).
func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Field names this runner knows, per level of a check. Known fields that
// it cannot act on yet are listed in the group's unsupported tables.
var (
	checkFields = set("id", "name", "via", "request", "repeat", "expect", "max_attempts",
		"allow_first_failures", "before", "load")
	requestFields = set("method", "host", "port", "path", "headers", "follow_redirects",
		"url", "tcp_send", "hold_open")
	expectFields = set("status", "status_any", "backend", "backend_service", "reached_backend",
		"backend_saw", "answered_by_proxy", "response_headers", "response_headers_one_of",
		"response_header_compare", "response_absent_headers", "redirect", "fractions", "fraction_by",
		"latency_min", "latency_max", "body_prefix", "response_prefix",
		// Load runs (see runLoad).
		"status_set", "min_count", "observed_upstream", "proxy_stat",
		// Known; a group runs them only if its Unsupported allows (the
		// istio-tasks group observes mirrored_to and not_received_by).
		"mirrored_to", "not_received_by", "requires", "connection_error", "client_exit_code",
		// istio-telemetry (istio_telemetry_test.go).
		"metrics", "access_log", "traces", "propagation", "settle")
	backendFields    = set("service", "version", "service_prefix", "namespace")
	backendSawFields = set("path", "host", "method", "headers", "absent_headers", "headers_contain")
	redirectFields   = set("scheme", "host", "port", "path")
)

func set(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// unknownFields returns "where.field" for each key of raw[where] not in known.
func unknownFields(raw map[string]any, where string, known map[string]bool) []string {
	sub, _ := raw[where].(map[string]any)
	if where == "" {
		sub = raw
	}
	var out []string
	for k := range sub {
		if !known[k] {
			out = append(out, strings.TrimPrefix(where+"."+k, "."))
		}
	}
	sort.Strings(out)
	return out
}

// rawField returns raw[path[0]][path[1]]... and whether it is present.
func rawField(raw map[string]any, path ...string) (any, bool) {
	var cur any = raw
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// expectUnknown lists the fields under a check's expect (and its backend,
// backend_saw and redirect) that the runner does not know, so that new
// corpus fields are noticed rather than ignored.
func expectUnknown(raw map[string]any) []string {
	unknown := unknownFields(raw, "expect", expectFields)
	if sub, ok := raw["expect"].(map[string]any); ok {
		unknown = append(unknown, prefixed("expect", unknownFields(sub, "backend", backendFields))...)
		unknown = append(unknown, prefixed("expect", unknownFields(sub, "backend_saw", backendSawFields))...)
		unknown = append(unknown, prefixed("expect", unknownFields(sub, "redirect", redirectFields))...)
	}
	return unknown
}
