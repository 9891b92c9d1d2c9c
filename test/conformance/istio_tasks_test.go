package conformance

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/echo"
)

// istioTasks is the istio-tasks group: Istio configuration from the
// traffic-management tasks, Bookinfo-style services behind echo backends,
// requests sent from in-mesh clients (via.mesh_client).
// With security set it is the istio-security group, with telemetry the
// istio-telemetry group: the same cases' form, with pods of their own
// (istio_security_test.go) and, for telemetry, metrics and access logs
// observed (istio_telemetry_test.go).
//
// With kube set it is the istio-tasks-kubernetes group: istio-tasks' cases
// with every object applied through a real API server
// (istio_tasks_kube_test.go).
type istioTasks struct {
	security, telemetry bool
	kube                bool
	cluster             *kubeStore // the running cluster of a kube group
}

func (g istioTasks) Name() string {
	switch {
	case g.kube:
		return "istio-tasks-kubernetes"
	case g.security:
		return "istio-security"
	case g.telemetry:
		return "istio-telemetry"
	}
	return "istio-tasks"
}

// istioCase is what istioTasks loads for a case.
type istioCase struct {
	Backends   Backends
	Config     string // config.yaml as applied: final state, workload manifests dropped
	MeshConfig string
	// Unapplicable names config this runner cannot apply; every check of
	// the case is skipped for it.
	Unapplicable string
	// Unclaimed is why the case's config is beyond what sluice claims to
	// implement; every check is skipped for it.
	Unclaimed string
	// Incomplete is why the case's config cannot give any check's result
	// (a route to a subset nothing defines); every check is skipped for it.
	Incomplete string
	// pods: an istio-security or istio-telemetry case (pods of their
	// own, see istio_security_test.go).
	pods bool
}

// Backends is backends.yaml.
type Backends struct {
	Namespace string          `json:"namespace"`
	Services  []BackendSvc    `json:"services"`
	Clients   []BackendClient `json:"clients"`
	// ServerSidecars is "all", or the workloads that must have one
	// (istio-telemetry): workloads have a sidecar unless they say
	// sidecar: false.
	ServerSidecars serverSidecars `json:"server_sidecars"`
	// Ingress describes the ingress gateway pod: the selector checks
	// enter by and the pod's labels (istio-security).
	Ingress *struct {
		Selector map[string]string `json:"selector"`
		Labels   map[string]string `json:"labels"`
	} `json:"ingress"`
	// ExternalHosts are servers outside the mesh (egress cases).
	ExternalHosts []ExternalHost `json:"external_hosts"`
}

// BackendSvc is a Service and the workloads behind it.
type BackendSvc struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Ports     []map[string]any  `json:"ports"`
	Selector  map[string]string `json:"selector"`
	Workloads []BackendWorkload `json:"workloads"`
}

// BackendWorkload is one Deployment behind a Service.
type BackendWorkload struct {
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Replicas *int              `json:"replicas"`
	Locality string            `json:"locality"`
	// Behaviour describes a non-echo workload, such as tcp-echo's
	// `echoes each line back prefixed with "one "`, or {tcp_echo_prefix}.
	Behaviour behaviour `json:"behaviour"`
	// Sidecar false: deployed without injection (istio-security).
	Sidecar *bool `json:"sidecar"`
	// ContainerPort(s) are the ports the pod serves, which Services'
	// targetPorts and PeerAuthentication portLevelMtls name.
	ContainerPort  int    `json:"container_port"`
	ContainerPorts []int  `json:"container_ports"`
	ServiceAccount string `json:"service_account"`
	// Collector: the workload is a tracing backend the runner runs
	// itself (zipkin, sink; istio-telemetry).
	Collector string `json:"collector"`
}

// serverSidecars is backends.yaml's server_sidecars: "all" or a list of
// workload names; either way a workload without sidecar: false has one.
type serverSidecars struct {
	All   bool
	Names []string
}

func (s *serverSidecars) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		var v string
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		if v != "all" {
			return fmt.Errorf("server_sidecars %q: want all or a list of workloads", v)
		}
		s.All = true
		return nil
	}
	return json.Unmarshal(data, &s.Names)
}

// behaviour is a workload's behaviour: a sentence (istio-tasks) or fields
// (istio-security's {tcp_echo_prefix: "hello "}).
type behaviour struct {
	Text          string
	TCPEchoPrefix string `json:"tcp_echo_prefix"`
}

func (b *behaviour) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &b.Text)
	}
	var fields struct {
		TCPEchoPrefix string `json:"tcp_echo_prefix"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fields); err != nil {
		return fmt.Errorf("behaviour: %w", err)
	}
	b.TCPEchoPrefix = fields.TCPEchoPrefix
	return nil
}

// tcpPrefix is the word a line echo answers with ("" for HTTP apps).
func (b behaviour) tcpPrefix() string {
	if b.TCPEchoPrefix != "" {
		return strings.TrimSuffix(b.TCPEchoPrefix, " ")
	}
	return linePrefix(b.Text)
}

// BackendClient is a client workload the checks send from.
type BackendClient struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Locality  string            `json:"locality"`
	// Sidecar false: the client sends plain HTTP straight to the server
	// (istio-security's legacy namespace).
	Sidecar        *bool  `json:"sidecar"`
	ServiceAccount string `json:"service_account"`
}

func (b *Backends) ns(ns string) string {
	switch {
	case ns != "":
		return ns
	case b.Namespace != "":
		return b.Namespace
	}
	return "default"
}

// Kinds of config.yaml.
var (
	// istioKinds are applied as they are.
	istioKinds = set("VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "WorkloadEntry", "Sidecar")
	// securityKinds are security.istio.io's, applied as they are.
	securityKinds = set("AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication")
	// workloadKinds describe the upstream deployment of the backends, which
	// backends.yaml restates and the runner builds itself.
	workloadKinds = set("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "ServiceAccount")
)

func (g istioTasks) Load(c *Case) error {
	d := &istioCase{pods: g.security || g.telemetry}
	c.Data = d
	if err := readYAML(filepath.Join(c.Dir, "backends.yaml"), &d.Backends); err != nil {
		return err
	}
	cfgName := c.Expect.Setup.Config
	if cfgName == "" {
		cfgName = "config.yaml"
	}
	raw, err := os.ReadFile(filepath.Join(c.Dir, cfgName))
	if errors.Is(err, os.ErrNotExist) && c.Expect.Setup.Config == "" {
		raw, err = nil, nil // setup.config null: the case applies nothing
	}
	if err != nil {
		return err
	}
	meshName := c.Expect.Setup.MeshConfig
	if v := c.Variant; v != nil {
		if v.Apply != "" {
			more, err := os.ReadFile(filepath.Join(c.Dir, v.Apply))
			if err != nil {
				return fmt.Errorf("variant %s: %w", v.Name, err)
			}
			raw = append(append(raw, "\n---\n"...), more...)
			cfgName += " + " + v.Apply
		}
		if v.MeshConfig != "" {
			meshName = v.MeshConfig
		}
	}
	var unclaimed []string
	if d.Config, d.Unapplicable, unclaimed, err = finalConfig(raw, &d.Backends); err != nil {
		return fmt.Errorf("%s: %w", cfgName, err)
	}
	d.Unclaimed = unclaimedReason(unclaimed)
	undefined, err := undefinedSubsets(d.Config)
	if err != nil {
		return fmt.Errorf("%s: %w", cfgName, err)
	}
	if len(undefined) > 0 {
		d.Incomplete = fmt.Sprintf("%s routes or mirrors to subsets no DestinationRule in it defines (%s): "+
			"the corpus case lacks the rule that defines them, and no implementation can serve such a route",
			cfgName, strings.Join(undefined, "; "))
	}
	given := meshName != ""
	if meshName == "" {
		meshName = "mesh-config.yaml"
	}
	if b, err := os.ReadFile(filepath.Join(c.Dir, meshName)); err == nil {
		d.MeshConfig = string(b)
	} else if given {
		return err
	}
	return nil
}

// finalConfig applies config.yaml's documents in order: a later document
// with the same kind, namespace and name replaces the earlier one. It drops
// workload manifests (and Services that backends.yaml defines), gives
// documents without a namespace the case's namespace, as "kubectl apply -n"
// would, and names any kind it cannot apply and the fields of the final
// documents that sluice does not claim.
func finalConfig(raw []byte, b *Backends) (config, unapplicable string, unclaimed []string, err error) {
	type doc struct {
		key, kind, name string
		text            string
	}
	var docs []*doc
	index := map[string]*doc{}
	var cannot []string
	rd := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		text, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", "", nil, err
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(text, &meta); err != nil {
			return "", "", nil, err
		}
		if meta.Kind == "" {
			continue // comments only
		}
		group, _, _ := strings.Cut(meta.APIVersion, "/")
		if !strings.Contains(meta.APIVersion, "/") {
			group = ""
		}
		ns := b.ns(meta.Metadata.Namespace)
		if m := applyNamespaceRE.FindSubmatch(text); m != nil && meta.Metadata.Namespace == "" {
			// `# apply-namespace: NS`: the page ran kubectl apply -n NS.
			ns = string(m[1])
			meta.Metadata.Namespace = ns
			if text, err = setNamespace(text, ns); err != nil {
				return "", "", nil, err
			}
		}
		switch {
		case workloadKinds[meta.Kind]:
			continue
		case group == "" && meta.Kind == "Service":
			if b.hasService(meta.Metadata.Name, ns) {
				continue
			}
		case group == "networking.istio.io" && istioKinds[meta.Kind]:
		case group == "security.istio.io" && securityKinds[meta.Kind]:
		case group == "telemetry.istio.io" && meta.Kind == "Telemetry" && enforced(meta.APIVersion, meta.Kind):
			// Applied once sluice enforces it.
		default:
			cannot = append(cannot, fmt.Sprintf("%s %s %s", meta.APIVersion, meta.Kind, meta.Metadata.Name))
			continue
		}
		if meta.Metadata.Namespace == "" && ns != "default" {
			var obj map[string]any
			if err := yaml.Unmarshal(text, &obj); err != nil {
				return "", "", nil, err
			}
			md, _ := obj["metadata"].(map[string]any)
			md["namespace"] = ns
			if text, err = yaml.Marshal(obj); err != nil {
				return "", "", nil, err
			}
		}
		key := meta.Kind + "/" + ns + "/" + meta.Metadata.Name
		if d := index[key]; d != nil {
			d.text = string(text)
			continue
		}
		d := &doc{key, meta.Kind, meta.Metadata.Name, string(text)}
		index[key] = d
		docs = append(docs, d)
	}
	var out []string
	for _, d := range docs {
		out = append(out, strings.TrimSpace(d.text)+"\n")
		var obj struct {
			Spec map[string]any `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(d.text), &obj); err != nil {
			return "", "", nil, err
		}
		unclaimed = append(unclaimed, unclaimedFields(d.kind, d.name, obj.Spec)...)
	}
	if len(cannot) > 0 {
		unapplicable = "config has kinds this runner cannot apply: " + strings.Join(cannot, ", ")
	}
	return strings.Join(out, "---\n"), unapplicable, unclaimed, nil
}

// applyNamespaceRE is the corpus's `# apply-namespace: NS` comment.
var applyNamespaceRE = regexp.MustCompile(`(?m)^#\s*apply-namespace:\s*(\S+)\s*$`)

// setNamespace gives a document metadata.namespace ns.
func setNamespace(text []byte, ns string) ([]byte, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(text, &obj); err != nil {
		return nil, err
	}
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	md["namespace"] = ns
	return yaml.Marshal(obj)
}

func (b *Backends) hasService(name, ns string) bool {
	for _, s := range b.Services {
		if s.Name == name && b.ns(s.Namespace) == ns {
			return true
		}
	}
	return false
}

// Why known fields cannot be run yet.
var (
	unsupportedVia = map[string]string{
		"gateway": "via.gateway: Gateway API gateways are not run by this runner yet",
	}
	unsupportedRequest = map[string]string{}
	unsupportedExpect  = map[string]string{
		"requires": "expect.requires: needs application behaviour the echo backend does not have",
	}
)

func (istioTasks) Unsupported(c *Case, ch *Check) string {
	if r, ok := istioDeviations[fmt.Sprintf("%s#%d", c.Name, ch.ID)]; ok {
		return "known deviation, not claimed: " + r
	}
	d := c.Data.(*istioCase)
	raw := ch.Raw
	var unknown []string
	unknown = append(unknown, unknownFields(raw, "", checkFields)...)
	unknown = append(unknown, unknownFields(raw, "request", requestFields)...)
	unknown = append(unknown, expectUnknown(raw)...)
	unknown = append(unknown, entryFieldsUnknown(raw, "mirrored_to", mirrorFields)...)
	unknown = append(unknown, entryFieldsUnknown(raw, "not_received_by", notReceivedFields)...)
	for i, b := range ch.Before {
		for _, f := range unknownFields(b, "", beforeFields) {
			unknown = append(unknown, fmt.Sprintf("before[%d].%s", i, f))
		}
	}
	if len(unknown) > 0 {
		return "fields this runner does not know: " + strings.Join(unknown, ", ")
	}
	via, _ := raw["via"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(via)) {
		if k == "mesh_client" || k == "ingress_gateway" {
			continue
		}
		if r, ok := unsupportedVia[k]; ok {
			return r
		}
		return "via." + k + ": unknown entry point"
	}
	if ch.Via.MeshClient == nil && ch.Via.IngressGateway == nil {
		return "no via.mesh_client or via.ingress_gateway"
	}
	if r := d.observeUnsupported(ch); r != "" {
		return r
	}
	if r := loadUnsupported(ch); r != "" {
		return r
	}
	if r := d.urlUnsupported(ch); r != "" {
		return r
	}
	request, _ := raw["request"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(request)) {
		if r, ok := unsupportedRequest[k]; ok {
			return r
		}
	}
	expect, _ := raw["expect"].(map[string]any)
	for _, k := range slices.Sorted(maps.Keys(expect)) {
		if r, ok := unsupportedExpect[k]; ok {
			if k == "requires" {
				r += fmt.Sprintf(" (%v)", expect[k])
			}
			return r
		}
	}
	if d.Unapplicable != "" {
		return d.Unapplicable
	}
	if r := telemetryUnsupported(ch); r != "" {
		return r
	}
	if d.Incomplete != "" {
		return d.Incomplete
	}
	if d.Unclaimed != "" {
		return d.Unclaimed
	}
	if r := d.bodyUnsupported(ch); r != "" {
		return r
	}
	if mc := ch.Via.MeshClient; mc != nil && mc.Locality != "" {
		if l := d.clientLocality(mc.Namespace, mc.Workload, c.Checks); l != mc.Locality {
			return fmt.Sprintf("via.mesh_client.locality %s: client %s/%s runs in locality %q (backends.yaml or an earlier check)",
				mc.Locality, mc.Namespace, mc.Workload, l)
		}
	}
	if ch.Request.Host == nil && ch.Request.URL == "" && ch.Via.MeshClient != nil {
		return "request.host is null: a mesh client has no gateway address to connect to"
	}
	if ch.Expect.ResponsePrefix != nil && ch.Request.TCPSend == nil {
		return "expect.response_prefix on an HTTP check: needs the application's own reply"
	}
	if ch.Request.TCPSend != nil && ch.Via.IngressGateway == nil && !d.pods {
		return "request.tcp_send from a mesh client: needs the client's outbound TCP address, not run yet"
	}
	if f := ch.Request.FollowRedirects; f != nil && *f {
		return "request.follow_redirects: true is not supported yet"
	}
	if fb := ch.Expect.FractionBy; fb != "" && !strings.Contains(fb, "version") && !strings.Contains(fb, "first word") {
		return fmt.Sprintf("expect.fraction_by %q: only the version label is supported", fb)
	}
	return ""
}

func prefixed(prefix string, fields []string) []string {
	for i := range fields {
		fields[i] = prefix + "." + fields[i]
	}
	return fields
}

// clientLocality is the locality a client's sidecar runs in: its
// backends.yaml locality, else the first one a check sending from it gives.
func (d *istioCase) clientLocality(ns, name string, checks []*Check) string {
	for _, cl := range d.Backends.Clients {
		if d.Backends.ns(cl.Namespace) == ns && cl.Name == name && cl.Locality != "" {
			return cl.Locality
		}
	}
	for _, ch := range checks {
		if mc := ch.Via.MeshClient; mc != nil && mc.Namespace == ns && mc.Workload == name && mc.Locality != "" {
			return mc.Locality
		}
	}
	return ""
}

// istioEnv is a running istio-tasks case.
type istioEnv struct {
	mesh     *testenv.Mesh
	data     *istioCase
	tmp      string                      // a folder for files of the case's runs
	clients  map[string]*testenv.Client  // by namespace/name
	gateways map[string]*testenv.Gateway // by selector
	// workloads are the running replicas of each backends.yaml workload,
	// by namespace/name.
	workloads map[string][]*istioWorkload
	// ext are the stand-ins for backends.yaml's external_hosts (nil
	// without any); tcpIPs are the clients' outbound TCP listener IPs,
	// and proxyClients send through a client's sidecar as an HTTP proxy
	// (request.url).
	ext          *externals
	tcpIPs       map[*testenv.Client]string
	proxyClients map[*testenv.Client]*http.Client
	// Security cases: where each mesh client sends from (by
	// namespace/name), and the address ingress requests leave from.
	senders     map[string]*sender
	ingressIP   string
	ingressHTTP *http.Client
	// collectors are the Zipkin collectors of the case's tracing
	// backends (istio_collector_test.go).
	collectors []*testenv.ZipkinCollector
}

// linePrefix reads the word a line echo answers with from a workload's
// behaviour, `echoes each line back prefixed with "one "`; "" for others.
var prefixRE = regexp.MustCompile(`prefixed with "(\S+) "`)

func linePrefix(behaviour string) string {
	if m := prefixRE.FindStringSubmatch(behaviour); m != nil {
		return m[1]
	}
	return ""
}

// startGateways starts one router proxy per ingress selector the checks
// enter by, in istio-system as Istio deploys them, with a port offset that
// puts every Gateway port the checks use on a free local port.
func (e *istioEnv) startGateways(t *testing.T, c *Case) {
	ports := map[string][]int{}
	for _, ch := range c.Checks {
		if ig := ch.Via.IngressGateway; ig != nil {
			key := selectorKey(ig.Selector)
			ports[key] = append(ports[key], ig.Port)
		}
	}
	for _, ch := range c.Checks {
		ig := ch.Via.IngressGateway
		if ig == nil || e.gateways[selectorKey(ig.Selector)] != nil {
			continue
		}
		key := selectorKey(ig.Selector)
		labels, sa := ingressLabels(ig.Selector)
		if in := e.data.Backends.Ingress; in != nil && selectorKey(in.Selector) == key {
			maps.Copy(labels, in.Labels)
		}
		e.gateways[key] = e.mesh.AddGateway(testenv.GatewayOptions{
			Name: "gateway-" + sanitizeName(key), Namespace: "istio-system", Labels: labels, ServiceAccount: sa,
			PortOffset: testenv.FreeOffset(t, ports[key]),
		})
	}
}

// ingressLabels are the labels and service account of the gateway
// workload a selector enters by: the selector's labels, and for Istio's
// default ingress gateway (istio=ingressgateway) the rest of what
// `istioctl install` gives its pods (app=istio-ingressgateway, which
// policies select it by, and its service account).
func ingressLabels(sel map[string]string) (map[string]string, string) {
	labels := maps.Clone(sel)
	if sel["istio"] != "ingressgateway" {
		return labels, ""
	}
	if _, ok := labels["app"]; !ok {
		labels["app"] = "istio-ingressgateway"
	}
	return labels, "istio-ingressgateway-service-account"
}

func selectorKey(sel map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		parts = append(parts, k+"="+sel[k])
	}
	return strings.Join(parts, ",")
}

func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// Setup builds the case in local mode (istio-tasks-kubernetes: through the
// API server, meshOptions): a Kubernetes Service per service,
// an echo backend + sidecar + WorkloadEntry per workload replica, a sidecar
// per client, config.yaml (final state) and the mesh config.
func (g istioTasks) Setup(t *testing.T, c *Case) Env {
	d := c.Data.(*istioCase)
	b := &d.Backends
	opts := testenv.MeshOptions{MeshConfigYAML: d.MeshConfig}
	g.cluster.meshOptions(t, &opts)
	var ext *externals
	if len(b.ExternalHosts) > 0 {
		// Every proxy resolves the external hosts to their stand-ins.
		if ext = startExternals(t, b.ExternalHosts); ext != nil {
			opts.ProxyArgs = append(opts.ProxyArgs, "--hosts-file", ext.hostsFile)
		}
	}
	m := testenv.NewMesh(t, opts)
	var svcDocs []string
	for _, s := range b.Services {
		svcDocs = append(svcDocs, testenv.MustYAML(map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": s.Name, "namespace": b.ns(s.Namespace)},
			"spec":     map[string]any{"selector": s.Selector, "ports": s.Ports},
		}))
	}
	if len(svcDocs) > 0 {
		m.WriteConfig("services.yaml", strings.Join(svcDocs, "---\n"))
	}
	env := &istioEnv{mesh: m, data: d, tmp: t.TempDir(), clients: map[string]*testenv.Client{},
		gateways: map[string]*testenv.Gateway{}, workloads: map[string][]*istioWorkload{},
		ext: ext, tcpIPs: map[*testenv.Client]string{}, proxyClients: map[*testenv.Client]*http.Client{},
		senders: map[string]*sender{}, ingressHTTP: ingressHTTP}
	config := d.Config
	if d.pods {
		// Ingress requests leave from an address of their own, which
		// $CLIENT_IP in the config names.
		env.ingressIP = testenv.LoopbackIP()
		env.ingressHTTP = directHTTP(env.ingressIP)
		config = strings.ReplaceAll(config, "$CLIENT_IP", env.ingressIP)
	}
	if strings.TrimSpace(config) != "" {
		m.WriteConfig("config.yaml", config)
	}
	recorded := d.mirrorTargetSet(c.Checks)
	for _, s := range b.Services {
		var portNames []string
		for _, p := range s.Ports {
			if n, _ := p["name"].(string); n != "" {
				portNames = append(portNames, n)
			}
		}
		if len(portNames) == 0 {
			t.Fatalf("service %s has no named port to map in a WorkloadEntry", s.Name)
		}
		for _, w := range s.Workloads {
			replicas := 1
			if w.Replicas != nil {
				replicas = *w.Replicas
			}
			ns := b.ns(s.Namespace)
			key := ns + "/" + w.Name
			route := parseBehaviour(w.Behaviour.Text)
			for i := 0; i < replicas; i++ {
				pod := w.Name + "-" + strconv.Itoa(i)
				iw := &istioWorkload{namespace: ns}
				opts := testenv.WorkloadOptions{
					Service: s.Name, Namespace: ns, Name: pod,
					Labels: w.Labels, Version: w.Labels["version"], Locality: w.Locality,
					PortName: portNames[0], PortNames: portNames[1:], TCPPrefix: w.Behaviour.tcpPrefix(),
				}
				if d.pods {
					podOptions(&opts, b, &s, &w)
				}
				if w.Collector != "" {
					env.collectorOptions(t, &opts, &w)
				}
				// An HTTP app with a described behaviour, or one whose
				// mirrored copies are inspected, runs in this process.
				if opts.TCPPrefix == "" && (route != nil || recorded[key]) {
					iw.app = startApp(t, echo.Options{Service: s.Name, Version: w.Labels["version"], Namespace: ns, Pod: pod}, route)
					opts.AppAddress = iw.app.addr
				}
				iw.w = m.AddWorkload(opts)
				env.workloads[key] = append(env.workloads[key], iw)
			}
		}
	}
	env.startGateways(t, c)
	if d.pods {
		env.startSecurityClients(t, c)
	}
	for j, cl := range b.Clients {
		if d.pods {
			break
		}
		ns := b.ns(cl.Namespace)
		co := testenv.ClientOptions{Name: cl.Name, Namespace: ns, Labels: cl.Labels, Locality: d.clientLocality(ns, cl.Name, c.Checks)}
		if ext != nil && ext.tls {
			// An app reaches an HTTPS host through its sidecar's outbound
			// TCP listeners.
			co.OutboundTCPIP = ext.clientIP(j)
		}
		client := m.AddClient(co)
		env.clients[ns+"/"+cl.Name] = client
		env.tcpIPs[client] = co.OutboundTCPIP
		pc := client.ProxyHTTP()
		env.proxyClients[client] = pc
		t.Cleanup(pc.CloseIdleConnections)
	}
	m.WaitReady()
	m.WaitSynced(30 * time.Second)
	if st := m.Status(); len(st.ConfigErrors) > 0 {
		t.Errorf("the control plane rejected the case's config:\n  %s", strings.Join(st.ConfigErrors, "\n  "))
	}
	return env
}

// hostHeader is the Host the check sends: request.host, with :port if given.
func hostHeader(ch *Check) string {
	h := *ch.Request.Host
	if ch.Request.Port > 0 {
		h += ":" + strconv.Itoa(ch.Request.Port)
	}
	return h
}

func (e *istioEnv) Send(ch *Check) (*testenv.Response, error) {
	if ig := ch.Via.IngressGateway; ig != nil {
		return e.sendIngress(ch, ig)
	}
	if ch.Request.URL != "" {
		return e.sendURL(ch)
	}
	if e.data.pods {
		return e.sendSecurity(ch)
	}
	c, err := e.client(ch)
	if err != nil {
		return nil, err
	}
	method, path := ch.Request.methodOrGET(), ch.Request.pathOrRoot()
	return c.Request(method, hostHeader(ch), path, ch.Request.Headers, nil)
}

// client is the mesh client ch sends from.
func (e *istioEnv) client(ch *Check) (*testenv.Client, error) {
	mc := ch.Via.MeshClient
	if mc == nil {
		return nil, errors.New("the check has no via.mesh_client")
	}
	c := e.clients[mc.Namespace+"/"+mc.Workload]
	if c == nil {
		return nil, fmt.Errorf("backends.yaml has no client %s/%s", mc.Namespace, mc.Workload)
	}
	return c, nil
}

// FractionKey: Istio cases split by the serving workload's version label;
// TCP exchanges by the first word of the echoed line.
func (e *istioEnv) FractionKey(r *testenv.Response) string {
	if r.Proto == "tcp" {
		word, _, _ := strings.Cut(string(r.Body), " ")
		return word
	}
	return identityOf(r).version
}

// sendIngress enters by the router serving the selector: HTTP with the
// check's Host (the gateway's own address when it is null), or one TCP
// exchange.
func (e *istioEnv) sendIngress(ch *Check, ig *IngressGateway) (*testenv.Response, error) {
	gw := e.gateways[selectorKey(ig.Selector)]
	if gw == nil {
		return nil, fmt.Errorf("no gateway for selector %v", ig.Selector)
	}
	addr := gw.Address(ig.Port)
	if ch.Request.TCPSend != nil {
		return tcpExchange(addr, *ch.Request.TCPSend, ch.Request.HoldOpen)
	}
	method, path := ch.Request.methodOrGET(), ch.Request.pathOrRoot()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	if ch.Request.Host != nil {
		req.Host = hostHeader(ch)
	}
	for k, v := range ch.Request.Headers {
		req.Header.Set(k, v)
	}
	r, err := testenv.Send(e.ingressHTTP, req)
	if err != nil && e.data.pods {
		return nil, classifyConnError(err)
	}
	return r, err
}

var ingressHTTP = &http.Client{Timeout: testenv.RequestTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// tcpExchange sends data on a new connection and returns the first line of
// the answer as the body, with Proto "tcp". The connection is held open up
// to hold (default 1s) for the answer.
func tcpExchange(addr, data, hold string) (*testenv.Response, error) {
	wait := time.Second
	if d, err := time.ParseDuration(hold); err == nil && d > 0 {
		wait = d
	}
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait + 5*time.Second))
	if _, err := c.Write([]byte(data)); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("tcp %s: no answer: %w", addr, err)
	}
	return &testenv.Response{Proto: "tcp", Body: []byte(strings.TrimRight(line, "\n")), Latency: time.Since(start)}, nil
}

func (e *istioEnv) Describe(ch *Check) string {
	if ig := ch.Via.IngressGateway; ig != nil {
		what := fmt.Sprintf("%s %s", ch.Request.Method, ch.Request.Path)
		if ch.Request.TCPSend != nil {
			what = fmt.Sprintf("TCP %q", *ch.Request.TCPSend)
		}
		host := "<gateway address>"
		if ch.Request.Host != nil {
			host = hostHeader(ch)
		}
		return fmt.Sprintf("%s to ingress %v port %d, Host %s, %d times", what, ig.Selector, ig.Port, host, max(ch.Repeat, 1))
	}
	mc := ch.Via.MeshClient
	method := ch.Request.methodOrGET()
	var s string
	if ch.Request.URL != "" {
		how := "through its sidecar as an HTTP proxy"
		if strings.HasPrefix(ch.Request.URL, "https:") {
			how = "as TLS to its sidecar's outbound TCP listener"
		}
		s = fmt.Sprintf("%s %s from %s/%s (%s)", method, ch.Request.URL, mc.Namespace, mc.Workload, how)
	} else {
		s = fmt.Sprintf("%s %s%s from %s/%s", method, hostHeader(ch), ch.Request.Path, mc.Namespace, mc.Workload)
	}
	if len(ch.Request.Headers) > 0 {
		var hs []string
		for _, k := range slices.Sorted(maps.Keys(ch.Request.Headers)) {
			hs = append(hs, k+": "+ch.Request.Headers[k])
		}
		sort.Strings(hs)
		s += " with " + strings.Join(hs, ", ")
	}
	if ch.Repeat > 1 {
		s += fmt.Sprintf(", %d times", ch.Repeat)
	}
	if l, err := loadSpecOf(ch); ch.Load != nil && err == nil {
		s += fmt.Sprintf(", %s load: %d requests, concurrency %d, qps %v", l.Tool, l.Requests, l.Concurrency, l.QPS)
	}
	for _, b := range ch.Before {
		s += fmt.Sprintf(", after %v %s", b["action"], beforeRef(b))
	}
	return s
}
