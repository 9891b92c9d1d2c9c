package inject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/pkg/ca"
)

// TestWebhookAgainstAPIServer runs the webhook against a real
// kube-apiserver: the configuration is created with the CA's roots, the
// API server calls the webhook for pods in an istio-injection=enabled
// namespace and stores them injected (native sidecar on 1.36, probes
// rewritten); pods elsewhere, opted out or on the host network are
// stored as they came; a bad annotation denies the pod; the proxy's
// --concurrency follows the mesh's defaultConfig as in force and the
// proxy.istio.io/config annotation; a tampered
// caBundle and a root rotation are patched back.
func TestWebhookAgainstAPIServer(t *testing.T) {
	cluster := kubetest.Start(t, kubetest.Options{})
	cs := cluster.Client(t)
	dir := t.TempDir()
	authority, err := ca.New(ca.Options{TrustDomain: "cluster.local", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The mesh's defaultConfig as the control plane holds it: read per
	// request, so a mesh config change reaches the next pod.
	var meshPC atomic.Pointer[meshv1alpha1.ProxyConfig]
	meshPC.Store(&meshv1alpha1.ProxyConfig{Concurrency: wrapperspb.Int32(4)})
	opts := ServerOptions{
		RESTConfig: cluster.RESTConfig(), CA: authority, Address: addr,
		Webhook:     WebhookOptions{Namespace: "istio-system", URL: "https://" + addr + "/inject"},
		Template:    Config{Image: "sluice:test", XDSAddress: DefaultXDSAddress, TrustDomain: "cluster.local"},
		CheckEvery:  200 * time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:     NewMetrics(prometheus.NewRegistry()),
		ProxyConfig: meshPC.Load,
	}
	go func() { done <- Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitBundle(t, cs, authority.RootPEM())

	cluster.CreateNamespace(t, "enabled", map[string]string{LabelInjection: "enabled"})
	cluster.CreateNamespace(t, "plain", nil)
	waitRootCert(t, cs, "enabled", authority.RootPEM())
	waitRootCert(t, cs, "plain", authority.RootPEM())
	if _, err := cs.CoreV1().ConfigMaps("kube-public").Get(context.Background(), RootCertConfigMap, metav1.GetOptions{}); err == nil {
		t.Errorf("root certificate ConfigMap written in kube-public, which Istio skips")
	}
	// Deleted, it comes back.
	if err := cs.CoreV1().ConfigMaps("plain").Delete(context.Background(), RootCertConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRootCert(t, cs, "plain", authority.RootPEM())
	// The API server reads webhook configurations through its own
	// informer: wait for the first injected pod.
	var got *corev1.Pod
	n := 0
	if err := testenv.Eventually(func() error {
		n++
		got = createPod(t, cs, "enabled", fmt.Sprintf("first-%d", n), nil)
		if container(got.Spec, ProxyContainerName) == nil {
			return errors.New("pod stored without the sidecar: webhook not in force yet")
		}
		return nil
	}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.InitContainers) != 2 {
		t.Fatalf("init containers %+v, want the capture and the proxy", got.Spec.InitContainers)
	}
	if ci := got.Spec.InitContainers[0]; ci.Name != CaptureContainerName || len(ci.Args) == 0 || ci.Args[0] != "capture" {
		t.Errorf("the capture init container comes first: %+v", ci)
	}
	sc := got.Spec.InitContainers[1]
	if sc.Name != ProxyContainerName || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("on Kubernetes 1.36 the proxy is a native sidecar; init containers %+v", got.Spec.InitContainers)
	}
	if p := got.Spec.Containers[0].ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/app-health/app/readyz" || p.HTTPGet.Port.IntVal != AgentPort {
		t.Errorf("readiness probe not rewritten: %+v", p)
	}
	if got.Annotations[AnnotationStatus] == "" || got.Labels[LabelTLSMode] != "istio" {
		t.Errorf("stored pod lacks the status annotation or tlsMode label: %v %v", got.Annotations, got.Labels)
	}
	// meshConfig.defaultConfig.concurrency, as in force at admission, and
	// the pod's proxy.istio.io/config over it.
	if c, _ := proxyArg(t, got, "--concurrency"); c != "4" {
		t.Errorf("--concurrency %q, want the mesh default's 4", c)
	}
	meshPC.Store(&meshv1alpha1.ProxyConfig{Concurrency: wrapperspb.Int32(3)})
	if c, _ := proxyArg(t, createPod(t, cs, "enabled", "mesh-changed", nil), "--concurrency"); c != "3" {
		t.Errorf("after the mesh config changed: --concurrency %q, want 3", c)
	}
	annotated := createPod(t, cs, "enabled", "proxy-config", func(p *corev1.Pod) { p.Annotations[AnnotationProxyConfig] = "concurrency: 1" })
	if c, _ := proxyArg(t, annotated, "--concurrency"); c != "1" {
		t.Errorf("annotated concurrency: 1: --concurrency %q", c)
	}
	unsupported := podObject("proxy-config-hold", func(p *corev1.Pod) {
		p.Annotations[AnnotationProxyConfig] = "holdApplicationUntilProxyStarts: true"
	})
	if _, err := cs.CoreV1().Pods("enabled").Create(context.Background(), unsupported, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), AnnotationProxyConfig) || !strings.Contains(err.Error(), "holdApplicationUntilProxyStarts") {
		t.Errorf("pod with an unsupported ProxyConfig field: %v, want denied naming the annotation and field", err)
	}
	for _, c := range []struct {
		ns, name string
		mut      func(*corev1.Pod)
	}{
		{"plain", "unlabelled-namespace", nil},
		{"enabled", "opted-out", func(p *corev1.Pod) { p.Labels[LabelSidecarInject] = "false" }},
		{"enabled", "host-network", func(p *corev1.Pod) { p.Spec.HostNetwork = true }},
	} {
		if p := createPod(t, cs, c.ns, c.name, c.mut); container(p.Spec, ProxyContainerName) != nil || p.Annotations[AnnotationStatus] != "" {
			t.Errorf("%s/%s injected", c.ns, c.name)
		}
	}
	// An unlabelled namespace's pod that opts in is injected (object.
	// webhook).
	if p := createPod(t, cs, "plain", "opted-in", func(p *corev1.Pod) { p.Labels[LabelSidecarInject] = "true" }); container(p.Spec, ProxyContainerName) == nil {
		t.Errorf("plain/opted-in not injected")
	}
	bad := podObject("bad-annotation", func(p *corev1.Pod) { p.Annotations["traffic.sidecar.istio.io/excludeOutboundPorts"] = "http" })
	if _, err := cs.CoreV1().Pods("enabled").Create(context.Background(), bad, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "traffic.sidecar.istio.io/excludeOutboundPorts") {
		t.Errorf("pod with a bad annotation: %v, want denied naming the annotation", err)
	}

	// Counted as istiod counts: the opted-out and unlabelled pods never
	// reached the webhook (the API server's selectors); the host-network
	// pod was skipped, the two bad annotations failed.
	m := opts.Metrics
	ok, skip, fail, reqs := counter(m.Success), counter(m.Skip), counter(m.Failure), counter(m.Requests)
	if skip != 1 || fail != 2 || ok < 4 || reqs != ok+skip+fail {
		t.Errorf("metrics: requests %v success %v skip %v failure %v", reqs, ok, skip, fail)
	}

	// kube-inject's output passes the API server's validation.
	in, _ := istioCase(t, "hello-probes")
	native := opts.Template
	native.NativeSidecar = true
	offline, err := InjectYAML(bytes.NewReader(in), "plain", native)
	if err != nil {
		t.Fatal(err)
	}
	var dep appsv1.Deployment
	if err := yaml.Unmarshal(offline, &dep); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments("plain").Create(context.Background(), &dep, metav1.CreateOptions{}); err != nil {
		t.Errorf("kube-inject output of Istio's hello-probes.yaml refused by the API server: %v", err)
	}

	// A caBundle changed behind our back is patched back.
	api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	cfg, err := api.Get(context.Background(), opts.Webhook.ConfigurationName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cfg.Webhooks {
		cfg.Webhooks[i].ClientConfig.CABundle = []byte("stale")
	}
	if _, err := api.Update(context.Background(), cfg, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBundle(t, cs, authority.RootPEM())

	// A root rotation reaches the caBundle, and pods are still injected
	// (the serving certificate now signed by the new root).
	if _, err := ca.Rotate(dir, "cluster.local"); err != nil {
		t.Fatal(err)
	}
	if changed, err := authority.Reload(); err != nil || !changed {
		t.Fatalf("CA reload after rotation: %v %v", changed, err)
	}
	waitBundle(t, cs, authority.RootPEM())
	waitRootCert(t, cs, "enabled", authority.RootPEM())
	n = 0
	if err := testenv.Eventually(func() error {
		n++
		if p := createPod(t, cs, "enabled", fmt.Sprintf("after-rotation-%d", n), nil); container(p.Spec, ProxyContainerName) == nil {
			return errors.New("pod after the root rotation not injected")
		}
		return nil
	}, 30*time.Second); err != nil {
		t.Error(err)
	}
}

// waitBundle waits until every webhook of the configuration carries want.
func waitBundle(t *testing.T, cs kubernetes.Interface, want []byte) {
	t.Helper()
	name := WebhookOptions{Namespace: "istio-system"}.ConfigurationName()
	if err := testenv.Eventually(func() error {
		cfg, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(cfg.Webhooks) != 4 {
			return fmt.Errorf("%d webhooks, want Istio's 4", len(cfg.Webhooks))
		}
		for _, w := range cfg.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, want) {
				return fmt.Errorf("webhook %s: caBundle not the CA's roots", w.Name)
			}
		}
		return nil
	}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// waitRootCert waits until ns's istio-ca-root-cert holds want.
func waitRootCert(t *testing.T, cs kubernetes.Interface, ns string, want []byte) {
	t.Helper()
	if err := testenv.Eventually(func() error {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), RootCertConfigMap, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data[RootCertKey] != string(want) {
			return fmt.Errorf("ConfigMap %s/%s: root-cert.pem is not the CA's roots", ns, RootCertConfigMap)
		}
		return nil
	}, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

func podObject(name string, mut func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "web",
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrString(8080)}}},
		}}},
	}
	if mut != nil {
		mut(p)
	}
	return p
}

func createPod(t *testing.T, cs kubernetes.Interface, ns, name string, mut func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Create(context.Background(), podObject(name, mut), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return p
}

func intOrString(n int) intstr.IntOrString { return intstr.FromInt(n) }

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
