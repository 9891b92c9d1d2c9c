package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// prometheusBinary is Debian's prometheus (.ci/run installs it): missing,
// the test fails under CI=true and is skipped elsewhere.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("prometheus")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("prometheus is not installed (apt-get install prometheus; .ci/run does): %v", err)
	}
	t.Skipf("prometheus is not installed (apt-get install prometheus): %v", err)
	return ""
}

// scrapeJob is one static scrape job of the generated configuration.
type scrapeJob struct {
	name, path string
	targets    []string
}

// prometheus is a running Prometheus server started by the test.
type prometheus struct {
	addr string
	log  *syncBuffer
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPrometheus writes a scrape configuration for jobs (scrape and
// evaluation interval 1s), starts Prometheus on a free port with its
// storage in a temporary folder, and waits until it is ready. It is
// stopped when the test ends.
func startPrometheus(t *testing.T, bin string, jobs []scrapeJob) *prometheus {
	t.Helper()
	dir := t.TempDir()
	var scrapes []map[string]any
	for _, j := range jobs {
		scrapes = append(scrapes, map[string]any{"job_name": j.name, "metrics_path": j.path,
			"static_configs": []map[string]any{{"targets": j.targets}}})
	}
	cfg, err := yaml.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
		"scrape_configs": scrapes,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: testenv.FreeAddr(), log: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("prometheus log:\n%s\nconfig:\n%s", p.log.String(), cfg)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s: %v\n%s", err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// number is the sample's value (NaN when it is not a number).
func (s promSample) number() float64 {
	str, _ := s.Value[1].(string)
	v, err := strconv.ParseFloat(str, 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// text is the sample as Grafana shows a query_result series to a
// variable's regex: {label="value", ...} value timestamp.
func (s promSample) text() string {
	keys := make([]string, 0, len(s.Metric))
	for k := range s.Metric {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, s.Metric[k])
	}
	return fmt.Sprintf("{%s} %v %v", strings.Join(parts, ", "), s.Value[1], s.Value[0])
}

// query runs an instant query through /api/v1/query. A scalar answer is
// one sample without labels.
func (p *prometheus) query(q string) ([]promSample, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: %s: %w", q, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", q, body.ErrorType, body.Error)
	}
	switch body.Data.ResultType {
	case "vector":
		var out []promSample
		err := json.Unmarshal(body.Data.Result, &out)
		return out, err
	case "scalar":
		var v [2]any
		err := json.Unmarshal(body.Data.Result, &v)
		return []promSample{{Value: v}}, err
	}
	return nil, fmt.Errorf("query %q: result type %s", q, body.Data.ResultType)
}

// hasData reports whether q answers at least one sample that is a number.
func (p *prometheus) hasData(q string) error {
	samples, err := p.query(q)
	if err != nil {
		return err
	}
	for _, s := range samples {
		if !math.IsNaN(s.number()) {
			return nil
		}
	}
	if len(samples) == 0 {
		return fmt.Errorf("no data")
	}
	return fmt.Errorf("only NaN: %v", samples)
}

// dashboard is what the test reads of a Grafana dashboard JSON.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

type templateVar struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Regex      string `json:"regex"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
}

// panelQuery is one target of one panel.
type panelQuery struct {
	panel, expr string
}

// queries lists every panel's targets, rows' nested panels included.
func (d *dashboard) queries() []panelQuery {
	var out []panelQuery
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Expr != "" {
					out = append(out, panelQuery{panel: p.Title, expr: tg.Expr})
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// grafanaVars resolves a dashboard's template variables as Grafana does
// with its defaults: the datasource variable is not part of queries;
// $__rate_interval and $__interval are fixed; a query variable runs its
// query_result(...) through Prometheus and keeps what its regex captures;
// the value of a single-valued variable is the test's choice, which must
// be among those offered; a multi-valued one with "All" (or a custom one)
// takes every value offered, formatted as Grafana formats a multi-value
// for Prometheus: (a|b|c), regex-escaped.
type grafanaVars struct {
	prom   *prometheus
	values map[string]string
}

func newGrafanaVars(p *prometheus, chosen map[string]string) *grafanaVars {
	v := &grafanaVars{prom: p, values: map[string]string{"__rate_interval": "30s", "__interval": "30s", "__range": "5m"}}
	for k, val := range chosen {
		v.values[k] = val
	}
	return v
}

// expand substitutes $name and ${name}, longest names first.
func (v *grafanaVars) expand(s string) string {
	names := make([]string, 0, len(v.values))
	for k := range v.values {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, k := range names {
		s = strings.ReplaceAll(s, "${"+k+"}", v.values[k])
		s = strings.ReplaceAll(s, "$"+k, v.values[k])
	}
	return s
}

var queryResult = regexp.MustCompile(`(?s)^\s*query_result\((.*)\)\s*$`)

// resolve gives every variable of d its value, in order, each query
// evaluated with the variables before it.
func (v *grafanaVars) resolve(d *dashboard) error {
	for _, tv := range d.Templating.List {
		var options []string
		switch tv.Type {
		case "datasource":
			continue
		case "custom":
			q, _ := tv.Query.(string)
			for _, o := range strings.Split(q, ",") {
				options = append(options, strings.TrimSpace(o))
			}
		case "query":
			opts, err := v.options(tv)
			if err != nil {
				return fmt.Errorf("variable %s: %w", tv.Name, err)
			}
			options = opts
		default:
			return fmt.Errorf("variable %s: type %s not handled by the test", tv.Name, tv.Type)
		}
		if len(options) == 0 {
			return fmt.Errorf("variable %s: its query offers no value", tv.Name)
		}
		if chosen, ok := v.values[tv.Name]; ok {
			if !contains(options, chosen) {
				return fmt.Errorf("variable %s: %q is not among the values offered %v", tv.Name, chosen, options)
			}
			continue
		}
		if !tv.Multi && !tv.IncludeAll {
			return fmt.Errorf("variable %s: single-valued, and the test chose no value (offered %v)", tv.Name, options)
		}
		escaped := make([]string, len(options))
		for i, o := range options {
			escaped[i] = strings.ReplaceAll(regexp.QuoteMeta(o), `\`, `\\`)
		}
		v.values[tv.Name] = "(" + strings.Join(escaped, "|") + ")"
	}
	return nil
}

// options runs a query variable's query_result(...) and applies its regex.
func (v *grafanaVars) options(tv templateVar) ([]string, error) {
	q, _ := tv.Query.(string)
	if m, ok := tv.Query.(map[string]any); ok {
		q, _ = m["query"].(string)
	}
	mm := queryResult.FindStringSubmatch(q)
	if mm == nil {
		return nil, fmt.Errorf("query %q is not query_result(...)", q)
	}
	samples, err := v.prom.query(v.expand(mm[1]))
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile(".*")
	if r := strings.Trim(tv.Regex, "/"); r != "" {
		if re, err = regexp.Compile(r); err != nil {
			return nil, fmt.Errorf("regex %q: %w", tv.Regex, err)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range samples {
		m := re.FindStringSubmatch(s.text())
		if m == nil {
			continue
		}
		val := m[0]
		if len(m) > 1 {
			val = m[1]
		}
		if !seen[val] {
			seen[val] = true
			out = append(out, val)
		}
	}
	sort.Strings(out)
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// readDashboards reads every grafana/*.json of the module.
func readDashboards(t *testing.T) map[string]*dashboard {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "grafana", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no grafana/*.json: %v", err)
	}
	out := map[string]*dashboard{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := &dashboard{}
		if err := json.Unmarshal(data, d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(d.queries()) == 0 {
			t.Fatalf("%s: no panel queries", f)
		}
		out[filepath.Base(f)] = d
	}
	return out
}
