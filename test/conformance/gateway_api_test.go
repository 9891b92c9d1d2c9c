package conformance

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/echo"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
)

// TestGatewayAPI runs the gateway-api group: Kubernetes Gateway API
// conformance cases entered through Gateways, each served by a router
// proxy started as users start one (--namespace NS --labels
// gateway.networking.k8s.io/gateway-name=NAME).
func TestGatewayAPI(t *testing.T) { runGroup(t, gatewayAPIGroup{}) }

// TestGatewayAPIMesh runs the gateway-api-mesh group: GAMMA routes (a
// Service as parent) applied to sidecar traffic from in-mesh clients.
func TestGatewayAPIMesh(t *testing.T) { runGroup(t, gatewayAPIGroup{mesh: true}) }

// gatewayClassName is the GatewayClass the runner installs (as a Gateway
// API implementation's installation does) and puts for the corpus's
// {GATEWAY_CLASS_NAME}.
const gatewayClassName = "sluice"

// gatewayAPIGroup is the gateway-api or the gateway-api-mesh group.
type gatewayAPIGroup struct{ mesh bool }

func (g gatewayAPIGroup) Name() string {
	if g.mesh {
		return "gateway-api-mesh"
	}
	return "gateway-api"
}

// gatewayFeatures are the Gateway API conformance features sluice claims
// ("") or does not, with the reason. A case needing a feature not claimed
// (or not listed) has its checks skipped, as the upstream suite skips
// what an implementation does not claim.
var gatewayFeatures = map[string]string{
	"SupportGateway":                                   "",
	"SupportGatewayPort8080":                           "",
	"SupportReferenceGrant":                            "",
	"SupportHTTPRoute":                                 "",
	"SupportHTTPRouteMethodMatching":                   "",
	"SupportHTTPRouteQueryParamMatching":               "",
	"SupportHTTPRouteResponseHeaderModification":       "",
	"SupportHTTPRouteBackendRequestHeaderModification": "",
	"SupportHTTPRoutePortRedirect":                     "",
	"SupportHTTPRouteSchemeRedirect":                   "",
	"SupportHTTPRoutePathRedirect":                     "",
	"SupportHTTPRoute303RedirectStatusCode":            "",
	"SupportHTTPRoute307RedirectStatusCode":            "",
	"SupportHTTPRoute308RedirectStatusCode":            "",
	"SupportHTTPRouteHostRewrite":                      "",
	"SupportHTTPRoutePathRewrite":                      "",
	"SupportHTTPRouteBackendRequestRedirect":           "",
	"SupportHTTPRouteBackendURLRewrite":                "",
	"SupportHTTPRouteRequestMirror":                    "",
	"SupportHTTPRouteRequestMultipleMirrors":           "",
	"SupportHTTPRouteRequestPercentageMirror":          "",
	"SupportHTTPRouteRequestTimeout":                   "",
	"SupportHTTPRouteBackendTimeout":                   "",
	"SupportHTTPRouteParentRefPort":                    "",
	"SupportHTTPRouteNamedRouteRule":                   "",
	"SupportHTTPRouteCORS":                             "",
	"SupportMesh":                                      "",
	"SupportMeshConsumerRoute":                         "",
	"SupportMeshHTTPRouteNamedRouteRule":               "",
	"SupportMeshHTTPRouteQueryParamMatching":           "",
	"SupportMeshHTTPRouteRedirectPath":                 "",
	"SupportMeshHTTPRouteRedirectPort":                 "",
	"SupportMeshHTTPRouteSchemeRedirect":               "",
	"SupportMeshHTTPRouteRewritePath":                  "",
	// Checks naming their destination by address alone run from a
	// captured pod (gateway_api_capture_test.go).
	"SupportMeshClusterIPMatching": "",
}

// gwExpect is the Gateway API part of expect.yaml.
type gwExpect struct {
	Features []string `json:"features"`
	Setup    struct {
		Base        string `json:"base"`
		Config      string `json:"config"`
		Placeholder string `json:"gateway_class_placeholder"`
	} `json:"setup"`
}

// gwBackends is backends.yaml of a Gateway API case: the workloads behind
// the Services (the Services themselves come from the config).
type gwBackends struct {
	// Base is the group's shared backends file (relative to the case).
	Base     string `json:"base"`
	Services []struct {
		Name      string       `json:"name"`
		Namespace string       `json:"namespace"`
		Workloads []gwWorkload `json:"workloads"`
	} `json:"services"`
}

type gwWorkload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Replicas  *int              `json:"replicas"`
}

// gwCase is what the group loads for a case.
type gwCase struct {
	expect gwExpect
	// config is the documents to apply: the base, then the case, later
	// documents replacing earlier ones of the same kind and name,
	// workload manifests dropped.
	config    string
	services  []gwService
	gateways  map[string]*gwGateway // by namespace/name
	workloads []gwWorkload
	// capture: some check needs a captured client (needsCapture); the
	// Services then have cluster IPs, vips by namespace/name.
	capture bool
	vips    map[string]string
	nextVIP int
	// unapplicable says why config cannot be applied, when it cannot.
	unapplicable string
	// backing lists the workloads ("ns/name") behind each Service of
	// backends.yaml ("ns/name").
	backing map[string][]string
	// docs are the config's documents after the GatewayClass header, for
	// before actions that delete some.
	header string
	docs   []gwDoc
	// recorded are the workloads that expect.mirrored_to names: they run
	// an in-process echo that records what it receives.
	recorded map[string]bool
}

// gwDoc is one document of the config.
type gwDoc struct {
	kind, namespace, name, text string
	deleted                     bool
}

// render writes the config without deleted documents.
func (d *gwCase) render() string {
	out := []string{d.header}
	for _, doc := range d.docs {
		if !doc.deleted {
			out = append(out, doc.text)
		}
	}
	return strings.Join(out, "---\n")
}

// gwService is a Service of the config, with its port names.
type gwService struct {
	name, namespace string
	selector        map[string]string
	ports           []string
}

// gwGateway is a Gateway of the config: its listener ports and the
// Secrets its listeners take certificates from, with their hostnames.
type gwGateway struct {
	ports   []int
	secrets map[string][]string // namespace/name -> listener hostnames
}

func (g gatewayAPIGroup) Load(c *Case) error {
	d := &gwCase{gateways: map[string]*gwGateway{}}
	c.Data = d
	for _, ch := range c.Checks {
		d.capture = d.capture || g.needsCapture(ch)
	}
	if err := readYAML(filepath.Join(c.Dir, "expect.yaml"), &d.expect); err != nil {
		return err
	}
	var b gwBackends
	if err := readYAML(filepath.Join(c.Dir, "backends.yaml"), &b); err != nil {
		return err
	}
	if g.mesh && b.Base != "" {
		// The mesh base's workloads run for every mesh case, as upstream
		// deploys them once for the whole mesh suite: the mesh clients
		// are among them. (A gateway-api case lists every backend its
		// checks reach, so its base's fourteen are not started.)
		var base gwBackends
		if err := readYAML(filepath.Join(c.Dir, b.Base), &base); err != nil {
			return err
		}
		have := map[string]bool{}
		for _, s := range b.Services {
			have[nsOr(s.Namespace)+"/"+s.Name] = true
		}
		for _, s := range base.Services {
			if !have[nsOr(s.Namespace)+"/"+s.Name] {
				b.Services = append(b.Services, s)
			}
		}
	}
	seen := map[string]bool{}
	d.backing = map[string][]string{}
	for _, s := range b.Services {
		for _, w := range s.Workloads {
			if w.Namespace == "" {
				w.Namespace = nsOr(s.Namespace)
			}
			svcKey := nsOr(s.Namespace) + "/" + s.Name
			d.backing[svcKey] = append(d.backing[svcKey], w.Namespace+"/"+w.Name)
			if k := w.Namespace + "/" + w.Name; !seen[k] {
				seen[k] = true
				d.workloads = append(d.workloads, w)
			}
		}
	}
	var raw []byte
	for _, name := range []string{d.expect.Setup.Base, d.expect.Setup.Config} {
		if name == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(c.Dir, name))
		if err != nil {
			return err
		}
		raw = append(append(raw, b...), "\n---\n"...)
	}
	d.recorded = map[string]bool{}
	for _, ch := range c.Checks {
		for _, m := range mirrorTargets(ch) {
			for _, w := range d.backing[m.namespace+"/"+m.service] {
				d.recorded[w] = true
			}
		}
	}
	if p := d.expect.Setup.Placeholder; p != "" {
		raw = bytes.ReplaceAll(raw, []byte(p), []byte(gatewayClassName))
	}
	return d.buildConfig(raw)
}

func nsOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// buildConfig applies the documents in order and indexes what the runner
// needs from them.
func (d *gwCase) buildConfig(raw []byte) error {
	type doc struct {
		key  string
		obj  map[string]any
		text string
	}
	var docs []*doc
	index := map[string]*doc{}
	rd := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		text, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(text, &obj); err != nil {
			return err
		}
		kind, _ := obj["kind"].(string)
		if kind == "" || workloadKinds[kind] || kind == "ConfigMap" {
			continue // the workloads' manifests (and their files): backends.yaml restates them
		}
		apiVersion, _ := obj["apiVersion"].(string)
		md, _ := obj["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		ns, _ := md["namespace"].(string)
		key := apiVersion + "/" + kind + "/" + nsOr(ns) + "/" + name
		dd := &doc{key: key, obj: obj, text: string(text)}
		if old := index[key]; old != nil {
			*old = *dd
			continue
		}
		index[key] = dd
		docs = append(docs, dd)
	}
	// The GatewayClass an installation of sluice provides.
	out := []string{testenv.MustYAML(map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
		"metadata": map[string]any{"name": gatewayClassName},
		"spec":     map[string]any{"controllerName": gatewayapi.ControllerName},
	})}
	d.docs = nil
	for _, dd := range docs {
		kind, _ := dd.obj["kind"].(string)
		apiVersion, _ := dd.obj["apiVersion"].(string)
		md, _ := dd.obj["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		ns, _ := md["namespace"].(string)
		switch {
		case apiVersion == "v1" && kind == "Service":
			svc, err := namePorts(dd.obj)
			if err != nil {
				return err
			}
			svc.name, svc.namespace = name, nsOr(ns)
			d.services = append(d.services, svc)
			if d.capture {
				d.allocateClusterIP(dd.obj, nsOr(ns)+"/"+name)
			}
			b, err := yaml.Marshal(dd.obj)
			if err != nil {
				return err
			}
			dd.text = string(b)
		case apiVersion == config.GatewayAPIGroup+"/v1" && kind == "Gateway" || apiVersion == config.GatewayAPIGroup+"/v1beta1" && kind == "Gateway":
			d.gateways[nsOr(ns)+"/"+name] = gatewayOf(dd.obj, nsOr(ns))
		}
		out = append(out, strings.TrimSpace(dd.text)+"\n")
		d.docs = append(d.docs, gwDoc{kind: kind, namespace: nsOr(ns), name: name, text: strings.TrimSpace(dd.text) + "\n"})
	}
	d.header = out[0]
	d.config = strings.Join(out, "---\n")
	// What sluice itself would skip cannot be applied faithfully.
	dec := config.Decode([]byte(d.config), config.DecodeOptions{File: "config.yaml"})
	if len(dec.Skipped) > 0 {
		d.unapplicable = "config has kinds sluice does not read: " + strings.Join(dec.Skipped, "; ")
	}
	return nil
}

// namePorts gives every unnamed Service port the name port-<number>: in
// local mode a WorkloadEntry maps ports by name to the workload's sidecar.
// A name without a protocol prefix keeps the port's protocol unknown, as
// an unnamed port is.
func namePorts(obj map[string]any) (gwService, error) {
	var svc gwService
	spec, _ := obj["spec"].(map[string]any)
	if sel, ok := spec["selector"].(map[string]any); ok {
		svc.selector = map[string]string{}
		for k, v := range sel {
			svc.selector[k] = fmt.Sprint(v)
		}
	}
	ports, _ := spec["ports"].([]any)
	for _, p := range ports {
		pm, ok := p.(map[string]any)
		if !ok {
			continue
		}
		if n, _ := pm["name"].(string); n == "" {
			pm["name"] = fmt.Sprintf("port-%v", pm["port"])
		}
		svc.ports = append(svc.ports, pm["name"].(string))
	}
	return svc, nil
}

func gatewayOf(obj map[string]any, ns string) *gwGateway {
	g := &gwGateway{secrets: map[string][]string{}}
	spec, _ := obj["spec"].(map[string]any)
	listeners, _ := spec["listeners"].([]any)
	for _, l := range listeners {
		lm, _ := l.(map[string]any)
		if p, err := strconv.Atoi(fmt.Sprint(lm["port"])); err == nil && !containsInt(g.ports, p) {
			g.ports = append(g.ports, p)
		}
		host, _ := lm["hostname"].(string)
		tlsCfg, _ := lm["tls"].(map[string]any)
		refs, _ := tlsCfg["certificateRefs"].([]any)
		for _, r := range refs {
			rm, _ := r.(map[string]any)
			rns, _ := rm["namespace"].(string)
			key := nsOr(firstNonEmpty(rns, ns)) + "/" + fmt.Sprint(rm["name"])
			if host != "" {
				g.secrets[key] = append(g.secrets[key], host)
			} else if _, ok := g.secrets[key]; !ok {
				g.secrets[key] = nil
			}
		}
	}
	return g
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Fields a Gateway API check may have beyond the shared ones.
var (
	gwCheckFields   = set(append(slices.Sorted(maps.Keys(checkFields)), "notes")...) // notes are for people
	gwViaFields     = set("gateway", "port", "scheme", "listeners", "tls_secret", "mesh_client")
	gwRequestFields = set("method", "host", "path", "headers", "follow_redirects", "backend_set_response_headers")
	gwUnsupported   = map[string]string{
		"not_received_by": "expect.not_received_by: per-workload request accounting is not supported by this runner yet",
	}
	podIPRE = regexp.MustCompile(`\{POD_IP_OF:([^/}]+)/([^}]+)\}(:\d+)?`)
)

func (g gatewayAPIGroup) Unsupported(c *Case, ch *Check) string {
	d := c.Data.(*gwCase)
	raw := ch.Raw
	var unknown []string
	unknown = append(unknown, unknownFields(raw, "", gwCheckFields)...)
	unknown = append(unknown, unknownFields(raw, "via", gwViaFields)...)
	unknown = append(unknown, unknownFields(raw, "request", gwRequestFields)...)
	unknown = append(unknown, expectUnknown(raw)...)
	if len(unknown) > 0 {
		return "fields this runner does not know: " + strings.Join(unknown, ", ")
	}
	via, _ := raw["via"].(map[string]any)
	_, viaGateway := via["gateway"]
	_, viaMesh := via["mesh_client"]
	switch {
	case !g.mesh && !viaGateway:
		return "no via.gateway"
	case g.mesh && !viaMesh:
		return "no via.mesh_client"
	}
	var missing []string
	for _, f := range d.expect.Features {
		why, known := gatewayFeatures[f]
		switch {
		case !known:
			missing = append(missing, f+" (not claimed)")
		case why != "":
			missing = append(missing, f+": "+why)
		}
	}
	if len(missing) > 0 {
		return "needs Gateway API features sluice does not claim: " + strings.Join(missing, "; ")
	}
	for _, b := range ch.Before {
		if b["action"] != "delete" {
			return fmt.Sprintf("before action %v is not supported by this runner yet", b["action"])
		}
	}
	if ch.Load != nil {
		return "load runs are not supported by this runner yet"
	}
	expect, _ := raw["expect"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(expect)) {
		if r, ok := gwUnsupported[k]; ok {
			return r
		}
	}
	if f := ch.Request.FollowRedirects; f != nil && *f {
		return "request.follow_redirects: true is not supported yet"
	}
	if hostHeaderDiffers(ch) {
		if !g.needsCapture(ch) {
			return fmt.Sprintf("request.headers.Host %q differs from the destination %v: needs the destination taken from "+
				"the address connected to, which only a captured mesh client has", ch.Request.Headers["Host"], strOr(ch.Request.Host))
		}
		if why := captureUnavailable(); why != "" {
			return "request.headers.Host differs from the destination: the check runs from a captured pod, and " + why
		}
	}
	if g.mesh && ch.Request.Host == nil {
		return "request.host is null: a mesh client has no address to send to"
	}
	if gw, _ := via["gateway"].(string); gw != "" && d.gateways[gw] == nil {
		return "via.gateway " + gw + ": no such Gateway in the case's config"
	}
	return d.unapplicable
}

func strOr(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// gwEnv is a running Gateway API case.
type gwEnv struct {
	t        *testing.T
	mesh     *testenv.Mesh
	ca       *testenv.CA
	gateways map[string]*testenv.Gateway  // by namespace/name
	pods     map[string]*testenv.Workload // by namespace/workload (replica 0)
	clients  map[string]*testenv.Client   // mesh clients that are not workloads
	captured map[string]*testenv.Captured // captured mesh clients (needsCapture), by namespace/workload
	names    []string                     // workload names, longest first
	plain    *http.Client

	mu  sync.Mutex
	tls map[string]*http.Client // by server name
	// seen counts, per recorded workload ("ns/name"), the requests it
	// received by their X-Conformance-Request id.
	seen   map[string]map[string]int
	nextID int
	// backing is the case's Service -> workloads map.
	backing map[string][]string
	data    *gwCase
}

// Before runs a check's before actions: delete removes the named
// resource from the config, as kubectl delete would, and waits until the
// control plane has pushed the change.
func (e *gwEnv) Before(ch *Check) error {
	for _, b := range ch.Before {
		kind, ns, name := fmt.Sprint(b["kind"]), nsOr(fmt.Sprint(b["namespace"])), fmt.Sprint(b["name"])
		found := false
		for i := range e.data.docs {
			doc := &e.data.docs[i]
			if doc.kind == kind && doc.namespace == ns && doc.name == name && !doc.deleted {
				doc.deleted, found = true, true
			}
		}
		if !found {
			return fmt.Errorf("delete %s %s/%s: not in the config", kind, ns, name)
		}
	}
	e.mesh.WriteConfig("config.yaml", e.data.render())
	e.mesh.WaitSynced(30 * time.Second)
	return nil
}

// Setup builds the case in local mode: the config (base, then case), an
// echo backend + sidecar + WorkloadEntry per workload replica (mapped to
// every Service port selecting it), the certificates the checks' HTTPS
// listeners need, a router per Gateway the checks enter by, and a client
// sidecar per mesh client that is not a workload.
func (g gatewayAPIGroup) Setup(t *testing.T, c *Case) Env {
	d := c.Data.(*gwCase)
	capture := d.capture && captureUnavailable() == ""
	// A captured pod reaches the control plane over its veth pair.
	m := testenv.NewMesh(t, testenv.MeshOptions{XDSListenAll: capture})
	env := &gwEnv{t: t, mesh: m, data: d, gateways: map[string]*testenv.Gateway{}, pods: map[string]*testenv.Workload{},
		clients: map[string]*testenv.Client{}, captured: map[string]*testenv.Captured{}, tls: map[string]*http.Client{},
		seen: map[string]map[string]int{}, backing: d.backing,
		plain: &http.Client{Timeout: testenv.RequestTimeout, CheckRedirect: noFollow}}
	m.WriteConfig("config.yaml", d.config)
	if secrets := d.secretsFor(c); len(secrets) > 0 {
		env.ca = testenv.NewCA(t, "gateway-api-conformance")
		var docs []string
		for _, key := range slices.Sorted(maps.Keys(secrets)) {
			ns, name, _ := strings.Cut(key, "/")
			cert, k := env.ca.Issue(t, secrets[key]...)
			docs = append(docs, testenv.TLSSecretYAML(name, ns, cert, k, nil))
		}
		m.WriteConfig("secrets.yaml", strings.Join(docs, "---\n"))
	}
	for _, w := range d.workloads {
		ports := d.portsFor(w)
		if len(ports) == 0 {
			t.Logf("workload %s/%s: no Service selects it; not started", w.Namespace, w.Name)
			continue
		}
		replicas := 1
		if w.Replicas != nil {
			replicas = *w.Replicas
		}
		for i := 0; i < replicas; i++ {
			pod := w.Name + "-" + strconv.Itoa(i)
			app := ""
			if d.recorded[w.Namespace+"/"+w.Name] {
				app = env.recordingEcho(t, w, pod)
			}
			wo := testenv.WorkloadOptions{
				Service: w.Name, Namespace: w.Namespace, Name: pod,
				Labels: w.Labels, PortName: ports[0], PortNames: ports[1:], AppAddress: app,
			}
			if capture {
				wo.IP = testenv.PodIP(t) // reachable from a captured pod's namespace
			}
			wl := m.AddWorkload(wo)
			if i == 0 {
				env.pods[w.Namespace+"/"+w.Name] = wl
			}
		}
		env.names = append(env.names, w.Name)
	}
	sort.Slice(env.names, func(i, j int) bool { return len(env.names[i]) > len(env.names[j]) })
	for _, ch := range c.Checks {
		if gw, _ := rawField(ch.Raw, "via", "gateway"); gw != nil {
			key := fmt.Sprint(gw)
			if env.gateways[key] != nil || d.gateways[key] == nil {
				continue
			}
			ns, name, _ := strings.Cut(key, "/")
			env.gateways[key] = m.AddGateway(testenv.GatewayOptions{
				Name: "gw-" + name, Namespace: ns, Labels: map[string]string{gatewayapi.GatewayNameLabel: name},
				PortOffset: testenv.FreeOffset(t, d.gateways[key].ports),
			})
		}
		if mc := ch.Via.MeshClient; mc != nil {
			key := mc.Namespace + "/" + mc.Workload
			if env.pods[key] == nil && env.clients[key] == nil {
				env.clients[key] = m.AddClient(testenv.ClientOptions{Name: mc.Workload, Namespace: mc.Namespace})
			}
		}
	}
	if capture {
		env.startCaptured(g, c.Checks)
	}
	m.WaitReady()
	m.WaitSynced(30 * time.Second)
	if st := m.Status(); len(st.ConfigErrors) > 0 {
		t.Errorf("the control plane rejected the case's config:\n  %s", strings.Join(st.ConfigErrors, "\n  "))
	}
	var st gatewayapi.Status
	if err := getJSON(m.URL("/debug/gatewayapi"), &st); err != nil {
		t.Errorf("read /debug/gatewayapi: %v", err)
	} else if p := st.Problems(); len(p) > 0 {
		t.Logf("Gateway API status (conditions not as they should be; some cases mean them to be):\n  %s", strings.Join(p, "\n  "))
	}
	return env
}

func noFollow(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// secretsFor lists the Secrets the checks' TLS gateways need, with the
// names their certificate must hold: the hosts the checks send to and
// the hostnames of the listeners using the Secret.
func (d *gwCase) secretsFor(c *Case) map[string][]string {
	out := map[string][]string{}
	for _, ch := range c.Checks {
		sec, _ := rawField(ch.Raw, "via", "tls_secret")
		gw, _ := rawField(ch.Raw, "via", "gateway")
		if sec == nil {
			continue
		}
		key := fmt.Sprint(sec)
		if ch.Request.Host != nil {
			out[key] = append(out[key], hostOnly(*ch.Request.Host))
		}
		if g := d.gateways[fmt.Sprint(gw)]; g != nil {
			out[key] = append(out[key], g.secrets[key]...)
		}
	}
	for k, v := range out {
		if len(v) == 0 {
			v = []string{"localhost"}
		}
		sort.Strings(v)
		out[k] = dedupe(v)
	}
	return out
}

// portsFor names the ports of every Service selecting workload w.
func (d *gwCase) portsFor(w gwWorkload) []string {
	var out []string
	for _, s := range d.services {
		if s.namespace != w.Namespace || len(s.selector) == 0 {
			continue
		}
		match := true
		for k, v := range s.selector {
			if w.Labels[k] != v {
				match = false
			}
		}
		if match {
			for _, p := range s.ports {
				if !containsStr(out, p) {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i]
	}
	return h
}

// gatewayHost is the Host a request to a Gateway carries when the check
// gives none: the address connected to, in the Gateway's own terms (its
// port, not the local offset one; no port when it is the scheme's default).
func gatewayHost(scheme string, port int) string {
	if defaultPorts[scheme] == strconv.Itoa(port) {
		return "127.0.0.1"
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

func (e *gwEnv) Send(ch *Check) (*testenv.Response, error) {
	id := ""
	if len(mirrorTargets(ch)) > 0 {
		id = e.newID()
	}
	return e.sendWithID(ch, id)
}

// sendWithID sends one request of ch, carrying id in requestIDHeader when
// it is not empty.
func (e *gwEnv) sendWithID(ch *Check, id string) (*testenv.Response, error) {
	method, path := ch.Request.methodOrGET(), ch.Request.pathOrRoot()
	headers := map[string]string{}
	for k, v := range ch.Request.Headers {
		headers[k] = v
	}
	if set, ok := rawField(ch.Raw, "request", "backend_set_response_headers"); ok {
		m, _ := set.(map[string]any)
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			parts = append(parts, k+":"+fmt.Sprint(m[k]))
		}
		headers["X-Echo-Set-Header"] = strings.Join(parts, ",")
	}
	if id != "" {
		headers[requestIDHeader] = id
	}
	if mc := ch.Via.MeshClient; mc != nil {
		if c := e.captured[mc.Namespace+"/"+mc.Workload]; c != nil && hostHeaderDiffers(ch) {
			return e.sendCaptured(c, method, e.expandHost(*ch.Request.Host), path, headers)
		}
		return e.sendMesh(mc, method, e.expandHost(*ch.Request.Host), path, headers)
	}
	gwKey := fmt.Sprint(ch.Raw["via"].(map[string]any)["gateway"])
	gw := e.gateways[gwKey]
	if gw == nil {
		return nil, fmt.Errorf("no router for Gateway %s", gwKey)
	}
	port, _ := strconv.Atoi(fmt.Sprint(ch.Raw["via"].(map[string]any)["port"]))
	scheme := fmt.Sprint(ch.Raw["via"].(map[string]any)["scheme"])
	host := gatewayHost(scheme, port)
	if ch.Request.Host != nil {
		host = *ch.Request.Host
	}
	req, err := http.NewRequest(method, scheme+"://"+gw.Address(port)+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	hc := e.plain
	if scheme == "https" {
		hc = e.tlsClient(hostOnly(host))
	}
	return testenv.Send(hc, req)
}

// tlsClient trusts the runner's CA and sends serverName as SNI.
func (e *gwEnv) tlsClient(serverName string) *http.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.tls[serverName]; c != nil {
		return c
	}
	cfg := &tls.Config{ServerName: serverName}
	if e.ca != nil {
		cfg.RootCAs = e.ca.Pool
	}
	c := &http.Client{Timeout: testenv.RequestTimeout, CheckRedirect: noFollow, Transport: &http.Transport{TLSClientConfig: cfg}}
	e.tls[serverName] = c
	return c
}

// expandHost replaces {POD_IP_OF:ns/workload}[:port] with where that pod
// receives traffic in local mode: its sidecar's inbound address.
func (e *gwEnv) expandHost(h string) string {
	return podIPRE.ReplaceAllStringFunc(h, func(s string) string {
		m := podIPRE.FindStringSubmatch(s)
		if w := e.pods[m[1]+"/"+m[2]]; w != nil {
			return w.InboundAddress
		}
		return s
	})
}

// sendMesh sends from a mesh client: a workload's own sidecar (its
// outbound listener), or a client sidecar started for it.
func (e *gwEnv) sendMesh(mc *MeshClient, method, host, path string, headers map[string]string) (*testenv.Response, error) {
	key := mc.Namespace + "/" + mc.Workload
	var outbound string
	switch {
	case e.pods[key] != nil:
		outbound = e.pods[key].OutboundAddress
	case e.clients[key] != nil:
		outbound = e.clients[key].OutboundAddress
	default:
		return nil, fmt.Errorf("no mesh client %s", key)
	}
	req, err := http.NewRequest(method, "http://"+outbound+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return testenv.Send(e.plain, req)
}

// FractionKey: the workload (pod name prefix) that served the response.
func (e *gwEnv) FractionKey(r *testenv.Response) string {
	pod := identityOf(r).pod
	for _, n := range e.names {
		if strings.HasPrefix(pod, n) {
			return n
		}
	}
	return pod
}

func (e *gwEnv) Describe(ch *Check) string {
	method := ch.Request.methodOrGET()
	var where string
	if mc := ch.Via.MeshClient; mc != nil {
		where = fmt.Sprintf("from %s/%s, Host %s", mc.Namespace, mc.Workload, e.expandHost(strOr(ch.Request.Host)))
	} else {
		via := ch.Raw["via"].(map[string]any)
		where = fmt.Sprintf("to Gateway %v %v port %v, Host %s", via["gateway"], via["scheme"], via["port"], strOr(ch.Request.Host))
	}
	s := fmt.Sprintf("%s %s %s", method, ch.Request.Path, where)
	if len(ch.Request.Headers) > 0 {
		var hs []string
		for _, k := range slices.Sorted(maps.Keys(ch.Request.Headers)) {
			hs = append(hs, k+": "+ch.Request.Headers[k])
		}
		s += " with " + strings.Join(hs, ", ")
	}
	if ch.Repeat > 1 {
		s += fmt.Sprintf(", %d times", ch.Repeat)
	}
	return s
}

// portValue is a port written as a number or a string.
type portValue string

func (p *portValue) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = portValue(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("port %s: want a number or a string", b)
	}
	*p = portValue(strconv.Itoa(n))
	return nil
}

// requestIDHeader carries a unique id on the requests of checks that
// expect mirrored copies; the copies carry it too.
const requestIDHeader = "X-Conformance-Request"

// mirrorTarget is one entry of expect.mirrored_to.
type mirrorTarget struct {
	service, namespace string
	percent            float64 // 0: every request
}

func mirrorTargets(ch *Check) []mirrorTarget {
	v, _ := rawField(ch.Raw, "expect", "mirrored_to")
	list, _ := v.([]any)
	var out []mirrorTarget
	for _, item := range list {
		m, _ := item.(map[string]any)
		mt := mirrorTarget{service: fmt.Sprint(m["service"]), namespace: fmt.Sprint(m["namespace"])}
		if p, ok := m["percent"].(float64); ok {
			mt.percent = p
		}
		out = append(out, mt)
	}
	return out
}

func (e *gwEnv) newID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nextID++
	return strconv.Itoa(e.nextID)
}

// recordingEcho runs the echo backend of a pod in this process, counting
// the requests it receives by id, and returns its address.
func (e *gwEnv) recordingEcho(t *testing.T, w gwWorkload, pod string) string {
	key := w.Namespace + "/" + w.Name
	srv := echo.New(echo.Options{Service: w.Name, Version: w.Labels["version"], Namespace: w.Namespace, Pod: pod})
	h := srv.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &protocols, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(requestIDHeader); id != "" {
			e.mu.Lock()
			if e.seen[key] == nil {
				e.seen[key] = map[string]int{}
			}
			e.seen[key][id]++
			e.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// received reports how many of ids the workloads of Service ns/name got.
func (e *gwEnv) received(ns, service string, ids []string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, id := range ids {
		for _, w := range e.backing[ns+"/"+service] {
			if e.seen[w][id] > 0 {
				n++
				break
			}
		}
	}
	return n
}

// Observe checks expect.mirrored_to: every request's copy reaches each
// mirror Service, or, with a percent, the share of copies lies within
// upstream's tolerance (3 standard deviations over 500 requests, up to 5
// attempts).
func (e *gwEnv) Observe(ch *Check) []string {
	targets := mirrorTargets(ch)
	if len(targets) == 0 {
		return nil
	}
	partial := false
	for _, t := range targets {
		partial = partial || t.percent > 0
	}
	if !partial {
		var ids []string
		for i := 0; i < 3; i++ {
			r, err := e.Send(ch)
			if p := evalResponse(ch, r, err); len(p) > 0 {
				return p
			}
			ids = append(ids, e.lastID())
		}
		var problems []string
		for _, t := range targets {
			err := testenv.Eventually(func() error {
				if n := e.received(t.namespace, t.service, ids); n < len(ids) {
					return fmt.Errorf("mirror Service %s/%s received %d of %d copies", t.namespace, t.service, n, len(ids))
				}
				return nil
			}, 5*time.Second)
			if err != nil {
				problems = append(problems, err.Error())
			}
		}
		return problems
	}
	const n, attempts = 500, 5
	var problems []string
	for a := 0; a < attempts; a++ {
		problems = nil
		ids, failed := e.sendMany(ch, n, 10)
		if failed > 0 {
			problems = append(problems, fmt.Sprintf("%d of %d requests failed", failed, n))
			continue
		}
		time.Sleep(500 * time.Millisecond) // copies are sent alongside; let the last ones land
		for _, t := range targets {
			p := t.percent / 100
			if t.percent == 0 {
				p = 1
			}
			want := float64(n) * p
			tol := 3 * math.Sqrt(float64(n)*p*(1-p))
			got := float64(e.received(t.namespace, t.service, ids))
			if got < want-tol || got > want+tol {
				problems = append(problems, fmt.Sprintf("mirror Service %s/%s received %.0f copies of %d requests, want %.0f±%.1f (%.0f%%)",
					t.namespace, t.service, got, n, want, tol, t.percent))
			}
		}
		if len(problems) == 0 {
			return nil
		}
	}
	return append(problems, fmt.Sprintf("(after %d attempts)", attempts))
}

func (e *gwEnv) lastID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strconv.Itoa(e.nextID)
}

// sendMany sends n requests of ch, conc at a time, and returns their ids
// and how many failed the per-response expectations.
func (e *gwEnv) sendMany(ch *Check, n, conc int) ([]string, int) {
	var mu sync.Mutex
	var ids []string
	failed := 0
	work := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				id := e.newID()
				r, err := e.sendWithID(ch, id)
				bad := len(evalResponse(ch, r, err)) > 0
				mu.Lock()
				ids = append(ids, id)
				if bad {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	return ids, failed
}
