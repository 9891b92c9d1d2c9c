package conformance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Load runs (expect.status_set, min_count, proxy_stat) for the istio-tasks
// group: fortio, as upstream's circuit-breaking task runs it, sends the
// check's request through the client's sidecar.

// fortioInstall is how fortio is installed; .ci/run does it before the
// tests, and the tests never download it themselves.
const fortioInstall = "go install fortio.org/fortio@v1.68.2"

// loadFields are the fields of a check's load block this runner knows.
var (
	loadFields      = set("tool", "concurrency", "qps", "requests")
	proxyStatFields = set("name", "cluster", "min")
)

// loadTimeout bounds one fortio run.
const loadTimeout = 2 * time.Minute

var fortioLookup struct {
	once sync.Once
	path string
	err  error
}

// fortioPath finds fortio on PATH, else where "go install" puts it
// ($GOBIN, else $GOPATH/bin).
func fortioPath() (string, error) {
	f := &fortioLookup
	f.once.Do(func() {
		if p, err := exec.LookPath("fortio"); err == nil {
			f.path = p
			return
		}
		var dirs []string
		if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			if len(lines) == 2 {
				if lines[0] != "" {
					dirs = append(dirs, lines[0])
				}
				for _, p := range filepath.SplitList(lines[1]) {
					dirs = append(dirs, filepath.Join(p, "bin"))
				}
			}
		}
		for _, d := range dirs {
			p := filepath.Join(d, "fortio")
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				f.path = p
				return
			}
		}
		f.err = fmt.Errorf("fortio not found on PATH or in $(go env GOPATH)/bin (install it with `%s`; .ci/run does)", fortioInstall)
	})
	return f.path, f.err
}

// loadSpec is a check's load block.
type loadSpec struct {
	Tool        string  `json:"tool"`
	Concurrency int     `json:"concurrency"`
	QPS         float64 `json:"qps"`
	Requests    int     `json:"requests"`
}

func loadSpecOf(ch *Check) (loadSpec, error) {
	var s loadSpec
	b, err := json.Marshal(ch.Load)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	return s, err
}

// loadUnsupported says why ch's load run cannot be done here, or "".
func loadUnsupported(ch *Check) string {
	e := ch.Expect
	if ch.Load == nil {
		if len(e.StatusSet) > 0 || len(e.MinCount) > 0 || e.ProxyStat != nil {
			return "expect.status_set, min_count or proxy_stat without a load block"
		}
		return ""
	}
	var unknown []string
	unknown = append(unknown, unknownFields(ch.Raw, "load", loadFields)...)
	if sub, ok := ch.Raw["expect"].(map[string]any); ok {
		unknown = append(unknown, prefixed("expect", unknownFields(sub, "proxy_stat", proxyStatFields))...)
	}
	if len(unknown) > 0 {
		return "fields this runner does not know: " + strings.Join(unknown, ", ")
	}
	s, err := loadSpecOf(ch)
	switch {
	case err != nil:
		return "load: " + err.Error()
	case s.Tool != "fortio":
		return fmt.Sprintf("load.tool %q: only fortio runs are supported", s.Tool)
	case s.Concurrency < 1 || s.Requests < 1 || s.QPS < 0:
		return fmt.Sprintf("load: concurrency %d, requests %d, qps %v: want positive counts", s.Concurrency, s.Requests, s.QPS)
	case ch.Via.MeshClient == nil:
		return "load: only load runs from a mesh client are supported"
	case ch.Request.Method != "" && ch.Request.Method != "GET":
		return "load: only GET load runs are supported (fortio's default)"
	case len(e.Status) > 0 || e.Backend != nil || e.BackendSaw != nil || len(e.Fractions) > 0:
		return "load: per-response expectations on a load run are not supported"
	case ch.Repeat > 1:
		return "load: repeat on a load run is not supported"
	}
	if e.ProxyStat != nil && (e.ProxyStat.Name == "" || e.ProxyStat.Cluster == "") {
		return "expect.proxy_stat needs a name and a cluster"
	}
	if _, err := fortioPath(); err != nil {
		return "load: " + err.Error()
	}
	return ""
}

// RunLoad runs fortio as upstream does ("fortio load -c C -qps Q -n N
// -loglevel Warning URL") from the check's client: the request goes to the
// client sidecar's outbound address with the check's Host, as an app's
// request captured by its sidecar would.
func (e *istioEnv) RunLoad(ch *Check) (map[int]int, error) {
	s, err := loadSpecOf(ch)
	if err != nil {
		return nil, err
	}
	bin, err := fortioPath()
	if err != nil {
		return nil, err
	}
	c, err := e.client(ch)
	if err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(e.tmp, "fortio-*.json")
	if err != nil {
		return nil, err
	}
	out.Close()
	path := ch.Request.Path
	if path == "" {
		path = "/"
	}
	args := []string{"load", "-c", strconv.Itoa(s.Concurrency), "-qps", strconv.FormatFloat(s.QPS, 'f', -1, 64),
		"-n", strconv.Itoa(s.Requests), "-loglevel", "Warning", "-json", out.Name(), "-H", "Host: " + hostHeader(ch)}
	for _, k := range slices.Sorted(maps.Keys(ch.Request.Headers)) {
		args = append(args, "-H", k+": "+ch.Request.Headers[k])
	}
	args = append(args, "http://"+c.OutboundAddress+path)
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if log, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, tailLines(string(log), 20))
	}
	data, err := os.ReadFile(out.Name())
	if err != nil {
		return nil, err
	}
	var res struct {
		RetCodes map[string]int `json:"RetCodes"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("fortio's JSON result %s: %w", out.Name(), err)
	}
	codes := map[int]int{}
	total := 0
	for k, n := range res.RetCodes {
		code, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("fortio's JSON result: status code %q", k)
		}
		codes[code] += n
		total += n
	}
	if total != s.Requests {
		return nil, fmt.Errorf("fortio reported %d results for %d requests (%s)", total, s.Requests, formatCodes(codes))
	}
	return codes, nil
}

// ProxyStat reads "cluster.<cluster>.<name>" from the admin /stats of the
// check's client sidecar, as upstream reads the client's istio-proxy stats.
func (e *istioEnv) ProxyStat(ch *Check, cluster, name string) (float64, error) {
	c, err := e.client(ch)
	if err != nil {
		return 0, err
	}
	resp, err := statsClient.Get("http://" + c.AdminAddress + "/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	want := "cluster." + cluster + "." + name
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok && k == want {
			return strconv.ParseFloat(v, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New(want + " is not in the stats of " + c.Namespace + "/" + c.Name + "'s sidecar")
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
