package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/netnstest"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/kube/nodeagent"
)

// kubePod is a pod on this machine: a network namespace with a process
// in it (what the node agent finds in /proc) and its Pod in the API
// server, on node-1, Running and Ready with the namespace's address.
type kubePod struct {
	ns        *netnstest.NS
	namespace string
	name      string
}

func startKubePod(t *testing.T, cs kubernetes.Interface, namespace, name string) *kubePod {
	t.Helper()
	ns := netnstest.New(t)
	sleep := exec.Command("sleep", "600")
	if err := ns.Start(sleep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "echo"}}}}
	created, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What the kubelet reports for a started pod (the control plane
	// gives a not-Ready pod's workload UNHEALTHY).
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ns.IP.String(), PodIPs: []corev1.PodIP{{IP: ns.IP.String()}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := cs.CoreV1().Pods(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &kubePod{ns: ns, namespace: namespace, name: name}
}

// captureRules are the in-pod chains found in the pod's namespace (any
// iptables backend).
func (p *kubePod) captureRules(t *testing.T) string {
	var out strings.Builder
	for _, save := range []string{"iptables-save", "iptables-legacy-save", "iptables-nft-save"} {
		if _, err := exec.LookPath(save); err != nil {
			continue
		}
		b, _ := p.ns.Command(t.Context(), save).Output()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "ISTIO_") {
				out.WriteString(l + "\n")
			}
		}
	}
	return out.String()
}

// redirection is the pod's ambient.istio.io/redirection annotation.
func redirection(t *testing.T, cs kubernetes.Interface, namespace, name string) string {
	p, err := cs.CoreV1().Pods(namespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Annotations["ambient.istio.io/redirection"]
}

func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", convergeTimeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// nodeAgentKubeconfig is a kubeconfig for ServiceAccount
// istio-system/ztunnel bound to nodeagent.ClusterRoleRules and nothing
// else: the node proxy runs with the permissions the docs give the chart.
func nodeAgentKubeconfig(t *testing.T, cluster *kubetest.Cluster, cs kubernetes.Interface) string {
	t.Helper()
	token := cluster.ServiceAccountToken(t, "istio-system", "ztunnel", nil)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "sluice-node-agent"}, Rules: nodeagent.ClusterRoleRules}
	if _, err := cs.RbacV1().ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sluice-node-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "ztunnel", Namespace: "istio-system"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: cluster.Host, CertificateAuthorityData: cluster.CACertPEM}
	cfg.AuthInfos["ztunnel"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "ztunnel"}
	cfg.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "ztunnel.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// ambientNode is node-1 of a real API server in ambient mode: namespace
// shop labelled istio.io/dataplane-mode=ambient with pods client and
// server (a Service over server with cluster IP 10.96.88.10:80 -> 8080),
// namespace plain with pod other, a control plane and the node proxy
// running its node agent.
type ambientNode struct {
	cluster               *kubetest.Cluster
	cs                    kubernetes.Interface
	m                     *testenv.Mesh
	node                  *testenv.NodeProxy
	agentConfig           string
	client, server, other *kubePod
}

// TestKubeAmbientNodeAgent: the node proxy on a node of a real API
// server captures, by itself, the pods of node-1 in a namespace labelled
// istio.io/dataplane-mode=ambient (finds their network namespaces in
// /proc, installs the in-pod rules, annotates them; the control plane
// then gives them HBONE); a pod of an unlabelled namespace is left
// alone until the namespace is labelled, and released when it is
// unlabelled; a pod relabelled istio.io/dataplane-mode=none, a finished
// pod and a deleted pod are released (rules gone; the relabelled pod's
// annotation too, and its traffic direct). The node
// proxy runs as a ServiceAccount with nodeagent.ClusterRoleRules only;
// restarted, it takes the captured pods over.
func TestKubeAmbientNodeAgent(t *testing.T) {
	e := newAmbientNode(t)
	t.Run("over HBONE", e.overHBONE)
	t.Run("node proxy restarted: takes the pods over", e.restarted)
	t.Run("unlabelled namespace not captured", e.unlabelledNamespace)
	t.Run("namespace labelled, then unlabelled", e.namespaceRelabelled)
	t.Run("dns-capture refused with an Event", e.dnsCaptureRefused)
	t.Run("relabelled none: released", e.relabelledNone)
	t.Run("finished: released", e.finished)
	t.Run("deleted: released", e.deleted)
	t.Run("CNI plugin: captured before the pod runs", e.cniPlugin)
	t.Run("CNI plugin chained while the DaemonSet exists", e.cniChained)
}

func newAmbientNode(t *testing.T) *ambientNode {
	netnstest.Require(t, "iptables")
	e := &ambientNode{cluster: kubetest.Start(t, kubetest.Options{})}
	e.cluster.CreateNamespace(t, "istio-system", nil)
	e.cluster.CreateNamespace(t, "shop", map[string]string{"istio.io/dataplane-mode": "ambient"})
	e.cluster.CreateNamespace(t, "plain", nil)
	e.cs = e.cluster.Client(t)
	a := e.cluster.NewApplier(t)
	a.Apply(t, "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n")
	a.Apply(t, `apiVersion: v1
kind: Service
metadata: {name: server, namespace: shop}
spec:
  clusterIP: 10.96.88.10
  selector: {app: server}
  ports: [{name: tcp, port: 80, targetPort: 8080}]
`)
	testenv.EnableForwarding(t)
	e.client = startKubePod(t, e.cs, "shop", "client")
	e.server = startKubePod(t, e.cs, "shop", "server")
	e.other = startKubePod(t, e.cs, "plain", "other")
	a.Apply(t, fmt.Sprintf(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: server-1, namespace: shop, labels: {kubernetes.io/service-name: server}}
addressType: IPv4
endpoints: [{addresses: [%s], conditions: {ready: true}, targetRef: {kind: Pod, name: server, namespace: shop}}]
ports: [{name: tcp, port: 8080}]
`, e.server.ns.IP))
	l, err := e.server.ns.Listen("tcp", "0.0.0.0:8080")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go serveSeen(l)

	e.m = testenv.NewMesh(t, testenv.MeshOptions{Kubeconfig: e.cluster.Kubeconfig})
	e.agentConfig = nodeAgentKubeconfig(t, e.cluster, e.cs)
	e.node = e.m.StartNodeAgent(e.agentConfig, "node-1")
	for _, p := range []*kubePod{e.client, e.server} {
		eventually(t, p.name+" annotated ambient.istio.io/redirection: enabled", func() bool {
			return redirection(t, e.cs, p.namespace, p.name) == "enabled"
		})
		if rules := p.captureRules(t); !strings.Contains(rules, "ISTIO_OUTPUT") || !strings.Contains(rules, "ISTIO_PRERT") {
			t.Errorf("%s: no in-pod rules:\n%s", p.name, rules)
		}
	}
	// The annotation reaches the node proxy as HBONE on both workloads.
	eventually(t, "both workloads HBONE in the node proxy's /config_dump", func() bool {
		return strings.Count(admin(t, e.node.AdminAddress, "/config_dump"), `"tunnelProtocol":"HBONE"`) == 2
	})
	e.m.WaitConverged(e.expect(t, "10.96.88.10:80"), convergeTimeout)
	return e
}

// expect: addr, dialled from the client pod, answers with the client's
// address. The dial is bounded: a SYN leaving uncaptured for an address
// nobody has would wait for the kernel's retries.
func (e *ambientNode) expect(t *testing.T, addr string) func() error {
	fromClient := func(network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return e.client.ns.Dial(ctx, network, addr)
	}
	return func() error { return expectSeen(fromClient, addr, "seen "+e.client.ns.IP.String()+":") }
}

// stat is one of the node proxy's /stats counters (0 when absent).
func (e *ambientNode) stat(t *testing.T, name string) int {
	m := regexp.MustCompile(`(?m)^ztunnel\.` + regexp.QuoteMeta(name) + `: (\d+)$`).FindStringSubmatch(admin(t, e.node.AdminAddress, "/stats"))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func (e *ambientNode) overHBONE(t *testing.T) {
	tunnels, plain := e.stat(t, "inbound.opened"), e.stat(t, "inbound_plaintext.opened")
	for _, addr := range []string{e.server.ns.IP.String() + ":8080", "10.96.88.10:80"} {
		if err := e.expect(t, addr)(); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.stat(t, "inbound.opened") - tunnels; got != 2 || e.stat(t, "inbound_plaintext.opened") != plain {
		t.Errorf("%d of 2 connections arrived over HBONE (plaintext %d, then %d)", got, plain, e.stat(t, "inbound_plaintext.opened"))
	}
}

// restarted: as a DaemonSet rollout, the rules and annotations stay and
// the new agent finds the pods again and serves them.
func (e *ambientNode) restarted(t *testing.T) {
	e.node.Process.Stop()
	e.node = e.m.StartNodeAgent(e.agentConfig, "node-1")
	e.m.WaitConverged(e.expect(t, "10.96.88.10:80"), convergeTimeout)
	if e.stat(t, "inbound.opened") == 0 {
		t.Errorf("no HBONE through the new node proxy: %s", admin(t, e.node.AdminAddress, "/stats"))
	}
}

func (e *ambientNode) unlabelledNamespace(t *testing.T) {
	if v := redirection(t, e.cs, "plain", "other"); v != "" {
		t.Errorf("plain/other annotated %q", v)
	}
	if rules := e.other.captureRules(t); rules != "" {
		t.Errorf("plain/other captured:\n%s", rules)
	}
}

func (e *ambientNode) namespaceRelabelled(t *testing.T) {
	label := func(v string) {
		patch := []byte(`{"metadata":{"labels":{"istio.io/dataplane-mode":` + v + `}}}`)
		if _, err := e.cs.CoreV1().Namespaces().Patch(t.Context(), "plain", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	label(`"ambient"`)
	eventually(t, "plain/other annotated", func() bool { return redirection(t, e.cs, "plain", "other") == "enabled" })
	if rules := e.other.captureRules(t); !strings.Contains(rules, "ISTIO_OUTPUT") {
		t.Errorf("plain/other: no in-pod rules:\n%s", rules)
	}
	label("null")
	eventually(t, "plain/other's annotation removed", func() bool { return redirection(t, e.cs, "plain", "other") == "" })
	eventually(t, "plain/other's rules removed", func() bool { return e.other.captureRules(t) == "" })
}

// dnsCaptureRefused: no namespace needed, the refusal comes before the
// search.
func (e *ambientNode) dnsCaptureRefused(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dns", Namespace: "shop", Annotations: map[string]string{"ambient.istio.io/dns-capture": "true"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "echo"}}}}
	created, err := e.cs.CoreV1().Pods("shop").Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.251.0.9"}
	if _, err := e.cs.CoreV1().Pods("shop").UpdateStatus(t.Context(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a Warning Event AmbientCaptureRefused on shop/dns naming the annotation", func() bool {
		evs, err := e.cs.CoreV1().Events("shop").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=dns"})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs.Items {
			if ev.Type == corev1.EventTypeWarning && ev.Reason == "AmbientCaptureRefused" && strings.Contains(ev.Message, "ambient.istio.io/dns-capture") {
				return true
			}
		}
		return false
	})
	if v := redirection(t, e.cs, "shop", "dns"); v != "" {
		t.Errorf("shop/dns annotated %q", v)
	}
}

func (e *ambientNode) relabelledNone(t *testing.T) {
	patch := []byte(`{"metadata":{"labels":{"istio.io/dataplane-mode":"none"}}}`)
	if _, err := e.cs.CoreV1().Pods("shop").Patch(t.Context(), "server", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "server's annotation removed", func() bool { return redirection(t, e.cs, "shop", "server") == "" })
	eventually(t, "server's rules removed", func() bool { return e.server.captureRules(t) == "" })
	e.m.WaitConverged(e.expect(t, e.server.ns.IP.String()+":8080"), convergeTimeout)
	tunnels, plain := e.stat(t, "inbound.opened"), e.stat(t, "inbound_plaintext.opened")
	for range 3 {
		if err := e.expect(t, "10.96.88.10:80")(); err != nil {
			t.Fatal(err)
		}
	}
	if e.stat(t, "inbound.opened") != tunnels || e.stat(t, "inbound_plaintext.opened") != plain {
		t.Errorf("the released server's connections still went through the node proxy: %s", admin(t, e.node.AdminAddress, "/stats"))
	}
}

// finished: a pod whose phase becomes Succeeded (a Job's) is released;
// its annotation stays, as istio-cni leaves a terminated pod's.
func (e *ambientNode) finished(t *testing.T) {
	job := startKubePod(t, e.cs, "shop", "job")
	eventually(t, "shop/job annotated", func() bool { return redirection(t, e.cs, "shop", "job") == "enabled" })
	eventually(t, "shop/job's rules", func() bool { return strings.Contains(job.captureRules(t), "ISTIO_OUTPUT") })
	p, err := e.cs.CoreV1().Pods("shop").Get(t.Context(), "job", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodSucceeded
	if _, err := e.cs.CoreV1().Pods("shop").UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "shop/job's rules removed", func() bool { return job.captureRules(t) == "" })
	if c, err := job.ns.Dial(t.Context(), "tcp", "127.0.0.1:15001"); err == nil {
		c.Close()
		t.Error("the node proxy still listens in the finished pod's namespace")
	}
}

func (e *ambientNode) deleted(t *testing.T) {
	if err := e.cs.CoreV1().Pods("shop").Delete(t.Context(), "client", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "client's rules removed", func() bool { return e.client.captureRules(t) == "" })
	// Nothing listens in the client's namespace now: straight to the
	// server by its address (no capture anywhere).
	if err := e.expect(t, e.server.ns.IP.String()+":8080")(); err != nil {
		t.Fatal(err)
	}
	if c, err := e.client.ns.Dial(t.Context(), "tcp", "127.0.0.1:15001"); err == nil {
		c.Close()
		t.Error("the node proxy still listens in the deleted pod's namespace")
	}
}

// runCNIPlugin runs the sluice binary as the container runtime runs the
// chained plugin sluice-cni for a pod sandbox (CNI_* environment, the
// network configuration with the previous plugin's result on stdin).
func runCNIPlugin(t *testing.T, command, socket, netns string, pod *corev1.Pod, ip string) error {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sluice-cni")
	if err := os.Symlink(testenv.Binary(t), bin); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"sluice-cni","agent_socket":%q,`+
		`"prevResult":{"cniVersion":"1.0.0","ips":[{"address":"%s/30"}]}}`, socket, ip)
	cmd := exec.Command(bin)
	cmd.Env = []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=sandbox-" + pod.Name, "CNI_NETNS=" + netns, "CNI_IFNAME=eth0",
		"CNI_PATH=" + filepath.Dir(bin), fmt.Sprintf("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_UID=%s",
			pod.Namespace, pod.Name, pod.UID)}
	cmd.Stdin = strings.NewReader(conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sluice-cni %s: %w: %s", command, err, out)
	}
	return nil
}

// cniPlugin: a pod whose sandbox is being set up (its network namespace
// made, no process in it yet, no IP in the API server) is captured and
// annotated by the time the CNI plugin returns, so its containers start
// captured; once it runs, the node proxy carries its traffic; a pod of an
// unlabelled namespace passes through untouched; DEL releases the pod.
func (e *ambientNode) cniPlugin(t *testing.T) {
	ctx := t.Context()
	mk := func(namespace, name string) (*kubePod, *corev1.Pod) {
		p := &kubePod{ns: netnstest.New(t), namespace: namespace, name: name}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "echo"}}}}
		created, err := e.cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p, created
	}
	fresh, pod := mk("shop", "fresh")
	if err := runCNIPlugin(t, "ADD", e.node.CNISocket, fresh.ns.Path(), pod, fresh.ns.IP.String()); err != nil {
		t.Fatal(err)
	}
	if rules := fresh.captureRules(t); !strings.Contains(rules, "ISTIO_OUTPUT") {
		t.Fatalf("no in-pod rules when the plugin returned:\n%s", rules)
	}
	if got := redirection(t, e.cs, "shop", "fresh"); got != "enabled" {
		t.Fatalf("annotation %q when the plugin returned", got)
	}
	// The kubelet reports the started pod.
	pod, err := e.cs.CoreV1().Pods("shop").Get(ctx, "fresh", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fresh.ns.IP.String(), PodIPs: []corev1.PodIP{{IP: fresh.ns.IP.String()}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := e.cs.CoreV1().Pods("shop").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The server left ambient mode in an earlier subtest: the new pod's
	// connection is carried by the node proxy from its in-pod outbound
	// listener, plain to the server.
	carried := e.stat(t, "outbound.opened")
	fromFresh := func(network, addr string) (net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return fresh.ns.Dial(dctx, network, addr)
	}
	e.m.WaitConverged(func() error {
		return expectSeen(fromFresh, "10.96.88.10:80", "seen "+fresh.ns.IP.String()+":")
	}, convergeTimeout)
	if e.stat(t, "outbound.opened") == carried {
		t.Error("the new pod's connection was not carried by the node proxy")
	}

	plain, plainPod := mk("plain", "fresh-plain")
	if err := runCNIPlugin(t, "ADD", e.node.CNISocket, plain.ns.Path(), plainPod, plain.ns.IP.String()); err != nil {
		t.Fatal(err)
	}
	if rules := plain.captureRules(t); rules != "" {
		t.Errorf("a pod of an unlabelled namespace was captured:\n%s", rules)
	}

	if err := runCNIPlugin(t, "DEL", e.node.CNISocket, fresh.ns.Path(), pod, fresh.ns.IP.String()); err != nil {
		t.Fatal(err)
	}
	if rules := fresh.captureRules(t); rules != "" {
		t.Errorf("rules left after DEL:\n%s", rules)
	}
}

// cniChained: started with --cni-conf-dir, the node agent chains the
// plugin into the node's primary network configuration; stopped while its
// DaemonSet exists (an upgrade, a reboot) it leaves it chained; stopped
// once the DaemonSet is gone (uninstalled) it unchains it and removes the
// binary, so pods no longer wait for an agent.
func (e *ambientNode) cniChained(t *testing.T) {
	conf, bin := t.TempDir(), t.TempDir()
	list := filepath.Join(conf, "10-flannel.conflist")
	if err := os.WriteFile(list, []byte(`{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	chained := func() bool {
		b, err := os.ReadFile(list)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(b), `"sluice-cni"`)
	}
	labels := map[string]string{"app": "ztunnel"}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ztunnel", Namespace: "istio-system"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "node-proxy", Image: "sluice"}}}}}}
	if _, err := e.cs.AppsV1().DaemonSets("istio-system").Create(t.Context(), ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	restart := func() {
		e.node.Process.Stop()
		e.node = e.m.StartNodeAgent(e.agentConfig, "node-1", "--cni-conf-dir", conf, "--cni-bin-dir", bin)
		eventually(t, "the agent answering the CNI plugin", func() bool {
			c, err := net.Dial("unix", e.node.CNISocket)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	restart()
	eventually(t, "sluice-cni chained into "+list, chained)
	if _, err := os.Stat(filepath.Join(bin, "sluice-cni")); err != nil {
		t.Fatalf("plugin binary: %v", err)
	}
	restart() // the DaemonSet is there: an upgrade
	if !chained() {
		t.Fatal("unchained on a restart while the DaemonSet exists")
	}
	if err := e.cs.AppsV1().DaemonSets("istio-system").Delete(t.Context(), "ztunnel", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.node.Process.Stop()
	if chained() {
		t.Error("still chained after the DaemonSet was deleted and the agent stopped")
	}
	if _, err := os.Stat(filepath.Join(bin, "sluice-cni")); !os.IsNotExist(err) {
		t.Errorf("plugin binary left: %v", err)
	}
}
