package conformance

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/echo"
)

// What the istio-tasks group does with the workloads of backends.yaml
// beyond serving requests: apps modelled from their described behaviour,
// before actions that make a workload unavailable, and observing which
// workloads received a check's requests (expect.mirrored_to and
// expect.not_received_by).

// istioWorkload is one running replica of a backends.yaml workload.
type istioWorkload struct {
	namespace string
	w         *testenv.Workload
	// app is the workload's app when it runs in the test process (a
	// modelled behaviour, or a mirror target whose requests are
	// recorded); nil when a "sluice echo" process serves it.
	app *appServer
}

func (w *istioWorkload) String() string { return w.namespace + "/" + w.w.Name }

// workloadRef names workloads in expect.mirrored_to, expect.not_received_by
// and before actions.
type workloadRef struct {
	service, version, namespace string
	name                        string // before actions: the workload's name
}

func (r workloadRef) String() string {
	if r.name != "" {
		return "workload " + r.name
	}
	s := "service " + r.service
	if r.version != "" {
		s += " version " + r.version
	}
	if r.namespace != "" {
		s += " in " + r.namespace
	}
	return s
}

// matches tells whether workload w of Service s (namespace ns) is one that
// r names.
func (r workloadRef) matches(ns string, s *BackendSvc, name string, labels map[string]string) bool {
	if r.namespace != "" && r.namespace != ns {
		return false
	}
	if r.name != "" {
		return name == r.name
	}
	return s.Name == r.service && (r.version == "" || labels["version"] == r.version)
}

// workloadsOf lists the backends.yaml workloads r names, as "ns/name".
func (b *Backends) workloadsOf(r workloadRef) []string {
	var out []string
	for i := range b.Services {
		s := &b.Services[i]
		ns := b.ns(s.Namespace)
		for _, w := range s.Workloads {
			if r.matches(ns, s, w.Name, w.Labels) {
				out = append(out, ns+"/"+w.Name)
			}
		}
	}
	return out
}

// Fields of the entries of expect.mirrored_to and expect.not_received_by,
// and of before actions.
var (
	mirrorFields      = set("service", "version", "namespace", "path", "method", "host_contains", "response_discarded", "percent")
	notReceivedFields = set("service", "version", "namespace")
	beforeFields      = set("action", "workload", "namespace", "how")
)

// mirrorExpect is one entry of expect.mirrored_to: the workloads that must
// receive a copy of every request, and what the copy must look like.
type mirrorExpect struct {
	ref          workloadRef
	path, method string
	hostContains string
	discarded    bool     // response_discarded: the client never gets the copy's answer
	percent      *float64 // nil: every request
}

func refOf(m map[string]any) workloadRef {
	str := func(k string) string {
		if v, ok := m[k].(string); ok {
			return v
		}
		return ""
	}
	return workloadRef{service: str("service"), version: str("version"), namespace: str("namespace")}
}

func mirrorExpects(ch *Check) []mirrorExpect {
	v, _ := rawField(ch.Raw, "expect", "mirrored_to")
	list, _ := v.([]any)
	var out []mirrorExpect
	for _, item := range list {
		m, _ := item.(map[string]any)
		me := mirrorExpect{ref: refOf(m)}
		me.path, _ = m["path"].(string)
		me.method, _ = m["method"].(string)
		me.hostContains, _ = m["host_contains"].(string)
		me.discarded, _ = m["response_discarded"].(bool)
		if p, ok := m["percent"].(float64); ok {
			me.percent = &p
		}
		out = append(out, me)
	}
	return out
}

func notReceivedRefs(ch *Check) []workloadRef {
	v, _ := rawField(ch.Raw, "expect", "not_received_by")
	list, _ := v.([]any)
	var out []workloadRef
	for _, item := range list {
		m, _ := item.(map[string]any)
		out = append(out, refOf(m))
	}
	return out
}

// beforeRef is the workload a make_unavailable action names.
func beforeRef(b map[string]any) workloadRef {
	name, _ := b["workload"].(string)
	ns, _ := b["namespace"].(string)
	return workloadRef{name: name, namespace: ns}
}

// entryFieldsUnknown lists fields of the entries of a list under
// expect.<where> that are not in known.
func entryFieldsUnknown(raw map[string]any, where string, known map[string]bool) []string {
	v, _ := rawField(raw, "expect", where)
	list, _ := v.([]any)
	var out []string
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			out = append(out, fmt.Sprintf("expect.%s[%d] (not a map)", where, i))
			continue
		}
		for _, f := range unknownFields(m, "", known) {
			out = append(out, fmt.Sprintf("expect.%s[].%s", where, f))
		}
	}
	return out
}

// observeUnsupported says why the workloads a check names in mirrored_to,
// not_received_by or its before actions cannot be acted on, or "".
func (d *istioCase) observeUnsupported(ch *Check) string {
	b := &d.Backends
	for _, a := range ch.Before {
		if a["action"] != "make_unavailable" {
			return fmt.Sprintf("before action %v is not supported by this runner", a["action"])
		}
		r := beforeRef(a)
		if r.name == "" {
			return "before make_unavailable names no workload"
		}
		if len(b.workloadsOf(r)) == 0 {
			return fmt.Sprintf("before make_unavailable: backends.yaml has no %s", r)
		}
	}
	for _, m := range mirrorExpects(ch) {
		if m.percent != nil && *m.percent != 100 {
			return fmt.Sprintf("expect.mirrored_to %s percent %v: only every request (100%%) is observed by this runner", m.ref, *m.percent)
		}
		ws := b.workloadsOf(m.ref)
		if len(ws) == 0 {
			return fmt.Sprintf("expect.mirrored_to: backends.yaml has no %s", m.ref)
		}
		for _, w := range ws {
			if d.tcpWorkload(w) {
				return fmt.Sprintf("expect.mirrored_to: %s is a TCP workload; HTTP mirroring cannot reach it", w)
			}
		}
	}
	for _, r := range notReceivedRefs(ch) {
		if len(b.workloadsOf(r)) == 0 {
			return fmt.Sprintf("expect.not_received_by: backends.yaml has no %s", r)
		}
	}
	return ""
}

// tcpWorkload tells whether backends.yaml describes workload "ns/name" as
// a TCP line echo.
func (d *istioCase) tcpWorkload(key string) bool {
	for _, s := range d.Backends.Services {
		for _, w := range s.Workloads {
			if d.Backends.ns(s.Namespace)+"/"+w.Name == key {
				return w.Behaviour.tcpPrefix() != ""
			}
		}
	}
	return false
}

// mirrorTargetSet is every workload ("ns/name") some check expects a
// mirrored copy at: their apps run in the test process and record what
// arrives, so that the copy's Host can be checked.
func (d *istioCase) mirrorTargetSet(checks []*Check) map[string]bool {
	out := map[string]bool{}
	for _, ch := range checks {
		for _, m := range mirrorExpects(ch) {
			for _, w := range d.Backends.workloadsOf(m.ref) {
				out[w] = true
			}
		}
	}
	return out
}

// behaviourRE reads an HTTP app behaviour from backends.yaml, such as
// `GET /hello answers "Hello version: region1.zone1, instance: <pod name>"`.
var behaviourRE = regexp.MustCompile(`^([A-Z]+) (/\S*) answers "(.*)"$`)

// placeholderRE finds the <...> placeholders of a behaviour's answer.
var placeholderRE = regexp.MustCompile(`<[^>]*>`)

// behaviourRoute is one request an app answers in its own way.
type behaviourRoute struct {
	method, path string
	// answer is the body, with "<pod name>" standing for the pod's name.
	answer string
}

// parseBehaviour returns the route a behaviour describes, or nil when it
// describes something this runner cannot model (only "<pod name>" can be
// filled in).
func parseBehaviour(s string) *behaviourRoute {
	m := behaviourRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil
	}
	for _, ph := range placeholderRE.FindAllString(m[3], -1) {
		if ph != "<pod name>" {
			return nil
		}
	}
	return &behaviourRoute{method: m[1], path: m[2], answer: m[3]}
}

// bodyUnsupported says why expect.body_prefix cannot be judged for ch, or
// "": the workloads that must serve it have to answer the check's request
// with a body that backends.yaml describes (echo answers JSON).
func (d *istioCase) bodyUnsupported(ch *Check) string {
	if ch.Expect.BodyPrefix == nil {
		return ""
	}
	const why = "expect.body_prefix: needs the application's own body (echo answers JSON)"
	if rb := ch.Expect.ReachedBackend; rb != nil && !*rb {
		return "" // the proxy answers (RBAC: access denied), not the app
	}
	b := ch.Expect.Backend
	if b == nil || b.Service == "" {
		return why + " and the check names no backend whose described behaviour could give it"
	}
	method := ch.Request.methodOrGET()
	path, _, _ := strings.Cut(ch.Request.Path, "?")
	ref := workloadRef{service: b.Service, version: b.Version, namespace: b.Namespace}
	ws := d.Backends.workloadsOf(ref)
	if len(ws) == 0 {
		return why + fmt.Sprintf("; backends.yaml has no %s", ref)
	}
	for _, key := range ws {
		r := d.behaviourOf(key)
		if r == nil || r.method != method || r.path != path {
			return why + fmt.Sprintf("; backends.yaml describes no behaviour of %s for %s %s that this runner can model", key, method, path)
		}
	}
	return ""
}

func (d *istioCase) behaviourOf(key string) *behaviourRoute {
	for _, s := range d.Backends.Services {
		for _, w := range s.Workloads {
			if d.Backends.ns(s.Namespace)+"/"+w.Name == key {
				return parseBehaviour(w.Behaviour.Text)
			}
		}
	}
	return nil
}

// seenRequest is a request as an in-process app received it.
type seenRequest struct {
	method, path, host string
}

// appServer is a workload's app run in the test process in place of a
// "sluice echo" process: the echo handler itself, except for the one
// request its described behaviour answers (with the X-Echo-* identity
// headers every echo answer carries), recording every request it gets.
type appServer struct {
	addr  string
	route *behaviourRoute
	body  string // route's answer for this pod

	mu   sync.Mutex
	seen []seenRequest
}

func startApp(t *testing.T, opts echo.Options, route *behaviourRoute) *appServer {
	srv := echo.New(opts)
	opts = srv.Options()
	h := srv.Handler()
	a := &appServer{route: route}
	if route != nil {
		a.body = strings.ReplaceAll(route.answer, "<pod name>", opts.Pod) + "\n"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("app %s: %v", opts.Pod, err)
	}
	a.addr = ln.Addr().String()
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a.mu.Lock()
			a.seen = append(a.seen, seenRequest{r.Method, r.RequestURI, r.Host})
			a.mu.Unlock()
			if a.route != nil && r.Method == a.route.method && r.URL.Path == a.route.path {
				io.Copy(io.Discard, r.Body)
				hdr := w.Header()
				hdr.Set("X-Echo-Service", opts.Service)
				hdr.Set("X-Echo-Version", opts.Version)
				hdr.Set("X-Echo-Pod", opts.Pod)
				hdr.Set("Content-Type", "text/plain; charset=utf-8")
				io.WriteString(w, a.body)
				return
			}
			h.ServeHTTP(w, r)
		})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return a
}

// mark returns how many requests the app has seen; since returns those
// seen after a mark.
func (a *appServer) mark() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

func (a *appServer) since(mark int) []seenRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen[mark:])
}

// Before runs a check's before actions. make_unavailable stops the
// sidecar of every replica of the workload: its listeners close, so new
// connections to the workload are refused, which is what upstream's
// "drain the sidecar listeners" (POST /drain_listeners) does. The workload
// stays registered, as the pod does upstream: the client's outlier
// detection has to notice.
func (e *istioEnv) Before(ch *Check) error {
	for _, a := range ch.Before {
		r := beforeRef(a)
		ws := e.workloadsFor(r)
		if len(ws) == 0 {
			return fmt.Errorf("make_unavailable: no running %s", r)
		}
		for _, w := range ws {
			// Upstream drains the pod's sidecar listeners. In Kubernetes the
			// drained sidecar then fails its readiness probe, the pod turns
			// unready and its endpoint leaves the EndpointSlice: clients fail
			// over by EDS, and outlier detection covers only the requests in
			// between. Locally: stop the sidecar, and take the workload out
			// of the registry as the unready pod would be.
			w.w.Sidecar.Stop()
			if _, err := net.DialTimeout("tcp", w.w.InboundAddress, time.Second); err == nil {
				return fmt.Errorf("make_unavailable %s: its inbound address %s still accepts connections", w, w.w.InboundAddress)
			}
			e.mesh.RemoveConfig(w.w.ConfigFile)
		}
	}
	return nil
}

// workloadsFor returns the running replicas of the workloads r names.
func (e *istioEnv) workloadsFor(r workloadRef) []*istioWorkload {
	var out []*istioWorkload
	for _, key := range e.data.Backends.workloadsOf(r) {
		out = append(out, e.workloads[key]...)
	}
	return out
}

// inboundRequests is how many requests a workload's sidecar has passed to
// its app: the sum of its inbound clusters' upstream_rq_total, from its
// admin /stats.
func inboundRequests(w *istioWorkload) (uint64, error) {
	resp, err := statsClient.Get("http://" + w.w.AdminAddress + "/stats")
	if err != nil {
		return 0, fmt.Errorf("stats of %s: %w", w, err)
	}
	defer resp.Body.Close()
	var total uint64
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, ": ")
		if !ok || !strings.HasPrefix(name, "cluster.inbound|") || !strings.HasSuffix(name, ".upstream_rq_total") {
			continue
		}
		n, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stats of %s: %q: %w", w, line, err)
		}
		total += n
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("stats of %s: %w", w, err)
	}
	if !found {
		return 0, fmt.Errorf("stats of %s: no cluster.inbound|...upstream_rq_total", w)
	}
	return total, nil
}

var statsClient = &http.Client{Timeout: 5 * time.Second}

// counts reads inboundRequests of each workload.
func counts(ws []*istioWorkload) (map[*istioWorkload]uint64, error) {
	out := map[*istioWorkload]uint64{}
	for _, w := range ws {
		n, err := inboundRequests(w)
		if err != nil {
			return nil, err
		}
		out[w] = n
	}
	return out, nil
}

// quiesce waits until the counts of ws stop changing (copies of earlier
// requests may still be on their way) and returns them.
func quiesce(ws []*istioWorkload) (map[*istioWorkload]uint64, error) {
	prev, err := counts(ws)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		time.Sleep(200 * time.Millisecond)
		cur, err := counts(ws)
		if err != nil {
			return nil, err
		}
		same := true
		for w, n := range cur {
			same = same && prev[w] == n
		}
		if same || time.Now().After(deadline) {
			return cur, nil
		}
		prev = cur
	}
}

// mirrorSettle is how long after the last request the observed workloads
// are read once more, for late or extra copies.
const mirrorSettle = 300 * time.Millisecond

// Observe judges expect.mirrored_to and expect.not_received_by from what
// the workloads' sidecars passed to their apps (their inbound
// upstream_rq_total, read before and after), over a fresh set of the
// check's requests. A mirror target's app runs in the test process and
// records the copies, so their method, path and Host are checked too.
func (e *istioEnv) Observe(ch *Check) []string {
	if p := e.observeTelemetry(ch); len(p) > 0 {
		return p
	}
	mirrors, absent := mirrorExpects(ch), notReceivedRefs(ch)
	if len(mirrors) == 0 && len(absent) == 0 {
		return nil
	}
	var watched []*istioWorkload
	targets := make([][]*istioWorkload, len(mirrors))
	for i, m := range mirrors {
		targets[i] = e.workloadsFor(m.ref)
		watched = append(watched, targets[i]...)
	}
	silent := make([][]*istioWorkload, len(absent))
	for i, r := range absent {
		silent[i] = e.workloadsFor(r)
		watched = append(watched, silent[i]...)
	}
	before, err := quiesce(watched)
	if err != nil {
		return []string{err.Error()}
	}
	marks := map[*istioWorkload]int{}
	for _, w := range watched {
		if w.app != nil {
			marks[w] = w.app.mark()
		}
	}
	n := max(ch.Repeat, 1)
	var problems []string
	for i := 0; i < n; i++ {
		r, err := e.Send(ch)
		if p := evalResponse(ch, r, err); len(p) > 0 {
			return append(p, fmt.Sprintf("(request %d of %d sent to observe the workloads)", i+1, n))
		}
		id := identityOf(r)
		for _, m := range mirrors {
			if m.discarded && id.service == m.ref.service && (m.ref.version == "" || id.version == m.ref.version) {
				problems = append(problems, fmt.Sprintf("request %d was answered by the mirror target %s, whose answer must be discarded", i+1, m.ref))
			}
		}
	}
	delta := func(ws []*istioWorkload) (uint64, error) {
		now, err := counts(ws)
		if err != nil {
			return 0, err
		}
		var d uint64
		for _, w := range ws {
			d += now[w] - before[w]
		}
		return d, nil
	}
	// Every copy first, then a moment for extra or stray ones.
	for i, m := range mirrors {
		err := testenv.Eventually(func() error {
			d, err := delta(targets[i])
			if err == nil && d < uint64(n) {
				err = fmt.Errorf("%s received %d copies of %d requests", m.ref, d, n)
			}
			return err
		}, 5*time.Second)
		if err != nil {
			problems = append(problems, "expect.mirrored_to: "+err.Error())
		}
	}
	time.Sleep(mirrorSettle)
	for i, m := range mirrors {
		if d, err := delta(targets[i]); err != nil {
			problems = append(problems, err.Error())
		} else if d > uint64(n) {
			problems = append(problems, fmt.Sprintf("expect.mirrored_to: %s received %d requests for %d sent, want one copy each", m.ref, d, n))
		}
		problems = append(problems, checkCopies(m, targets[i], marks, n)...)
	}
	for i, r := range absent {
		if d, err := delta(silent[i]); err != nil {
			problems = append(problems, err.Error())
		} else if d > 0 {
			problems = append(problems, fmt.Sprintf("expect.not_received_by: %s received %d of %d requests", r, d, n))
		}
	}
	return problems
}

// checkCopies checks what the apps of a mirror target recorded since
// their marks: n copies (nothing else reaches them meanwhile), each with
// the expected method, path and Host.
func checkCopies(m mirrorExpect, ws []*istioWorkload, marks map[*istioWorkload]int, n int) []string {
	var copies []seenRequest
	for _, w := range ws {
		if w.app == nil {
			return []string{fmt.Sprintf("expect.mirrored_to: %s does not record its requests; cannot check the copies' Host", w)}
		}
		copies = append(copies, w.app.since(marks[w])...)
	}
	var p []string
	if len(copies) != n {
		p = append(p, fmt.Sprintf("expect.mirrored_to: the app of %s recorded %d requests for %d sent", m.ref, len(copies), n))
	}
	wrong := map[string]int{} // what was wrong -> how many copies
	var order []string
	note := func(what string) {
		if wrong[what] == 0 {
			order = append(order, what)
		}
		wrong[what]++
	}
	for _, c := range copies {
		if m.method != "" && c.method != m.method {
			note(fmt.Sprintf("method %q, want %q", c.method, m.method))
		}
		if m.path != "" && c.path != m.path {
			note(fmt.Sprintf("path %q, want %q", c.path, m.path))
		}
		if m.hostContains != "" && !strings.Contains(c.host, m.hostContains) {
			note(fmt.Sprintf("Host %q, want it to contain %q", c.host, m.hostContains))
		}
	}
	for _, what := range order {
		p = append(p, fmt.Sprintf("expect.mirrored_to: %d of %d copies at %s had %s", wrong[what], len(copies), m.ref, what))
	}
	return p
}
