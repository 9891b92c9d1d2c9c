package gwdeploy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/sluice-mesh/sluice/internal/kubetest"
	"github.com/sluice-mesh/sluice/pkg/gatewayapi"
	"github.com/sluice-mesh/sluice/pkg/kube/gwdeploy"
	"github.com/sluice-mesh/sluice/pkg/kube/gwstatus"
)

type env struct {
	t    *testing.T
	kc   kubernetes.Interface
	gwc  gwclient.Interface
	dep  *gwdeploy.Controller
	wake chan struct{}
	cfg  *rest.Config
}

func start(t *testing.T) *env {
	c := kubetest.Start(t, kubetest.Options{})
	c.InstallGatewayAPICRDs(t)
	e := startOn(t, c)
	e.istioClass()
	return e
}

// istioClass creates the GatewayClass istio.
func (e *env) istioClass() {
	_, err := e.gwc.GatewayV1().GatewayClasses().Create(context.Background(), &gwv1.GatewayClass{
		ObjectMeta: metav1.ObjectMeta{Name: "istio"}, Spec: gwv1.GatewayClassSpec{ControllerName: gatewayapi.IstioControllerName}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
}

// startOn runs a controller on c.
func startOn(t *testing.T, c *kubetest.Cluster) *env { return startAs(t, c, c.RESTConfig()) }

// startAs runs a controller on c whose clients use as; the test's are
// the cluster's admin.
func startAs(t *testing.T, c *kubetest.Cluster, as *rest.Config) *env {
	c.CreateNamespace(t, "shop", nil)
	e := &env{t: t, kc: c.Client(t), gwc: gwclient.NewForConfigOrDie(c.RESTConfig()), wake: make(chan struct{}, 1), cfg: c.RESTConfig()}
	var err error
	e.dep, err = gwdeploy.New(gwdeploy.Options{Client: kubernetes.NewForConfigOrDie(as), Gateway: gwclient.NewForConfigOrDie(as), Image: "example.com/sluice:test",
		XDSAddress: "istiod.istio-system.svc:15012", TrustDomain: "cluster.local",
		OnStatus: func() {
			select {
			case e.wake <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.dep.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *env) gateway(name string, mod func(*gwv1.Gateway)) *gwv1.Gateway {
	e.t.Helper()
	gw := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "istio", Listeners: []gwv1.Listener{
			{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
			{Name: "db.tcp", Port: 9000, Protocol: gwv1.TCPProtocolType}}}}
	if mod != nil {
		mod(gw)
	}
	out, err := e.gwc.GatewayV1().Gateways("shop").Create(context.Background(), gw, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// eventually retries check until it passes or 15 s pass.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ownedBy(o metav1.Object, gw *gwv1.Gateway) error {
	refs := o.GetOwnerReferences()
	if len(refs) != 1 || refs[0].Kind != "Gateway" || refs[0].APIVersion != "gateway.networking.k8s.io/v1" || refs[0].Name != gw.Name || refs[0].UID != gw.UID {
		return fmt.Errorf("%s: owner references %+v, want Gateway %s uid %s", o.GetName(), refs, gw.Name, gw.UID)
	}
	l := o.GetLabels()
	if l[gwdeploy.LabelGatewayName] != gw.Name || l[gwdeploy.LabelManaged] != gwdeploy.ManagedValue || l[gwdeploy.LabelGatewayClassName] != "istio" {
		return fmt.Errorf("%s: labels %v", o.GetName(), l)
	}
	return nil
}

func portsOf(svc *corev1.Service) string {
	var out []string
	for _, p := range svc.Spec.Ports {
		out = append(out, fmt.Sprintf("%s:%d/%s", p.Name, p.Port, ptr.Deref(p.AppProtocol, "")))
	}
	return strings.Join(out, ",")
}

func (e *env) status(name string) (gwdeploy.Status, error) {
	st, ok := e.dep.Status("shop", name)
	if !ok {
		return st, fmt.Errorf("no status for %s", name)
	}
	return st, nil
}

func wantProgrammed(st gwdeploy.Status, status, reason, msg string) error {
	p := st.Programmed
	if p.Status != status || p.Reason != reason || !strings.Contains(p.Message, msg) {
		return fmt.Errorf("Programmed %s/%s %q, want %s/%s containing %q", p.Status, p.Reason, p.Message, status, reason, msg)
	}
	return nil
}

// provisioned checks web's ServiceAccount, Deployment and Service.
func (e *env) provisioned(gw *gwv1.Gateway) error {
	ctx := context.Background()
	var svc *corev1.Service
	sa, err := e.kc.CoreV1().ServiceAccounts("shop").Get(ctx, "web-istio", metav1.GetOptions{})
	if err != nil {
		return err
	}
	d, err := e.kc.AppsV1().Deployments("shop").Get(ctx, "web-istio", metav1.GetOptions{})
	if err != nil {
		return err
	}
	if svc, err = e.kc.CoreV1().Services("shop").Get(ctx, "web-istio", metav1.GetOptions{}); err != nil {
		return err
	}
	for _, o := range []metav1.Object{sa, d, svc} {
		if err := ownedBy(o, gw); err != nil {
			return err
		}
		if o.GetLabels()["team"] != "a" || o.GetAnnotations()["example.com/note"] != "x" {
			return fmt.Errorf("%T: the Gateway's labels and annotations not copied: %v %v", o, o.GetLabels(), o.GetAnnotations())
		}
	}
	pod := d.Spec.Template
	args := strings.Join(pod.Spec.Containers[0].Args, " ")
	if !strings.HasPrefix(args, "proxy --type router") || !strings.Contains(args, "gateway.networking.k8s.io/gateway-name=web") ||
		!strings.Contains(args, "--xds-address istiod.istio-system.svc:15012") || !strings.Contains(args, "--agent-address 0.0.0.0:15021") {
		return fmt.Errorf("proxy args: %s", args)
	}
	if pod.Spec.ServiceAccountName != "web-istio" || pod.Annotations["istio.io/rev"] != "default" || pod.Labels["sidecar.istio.io/inject"] != "false" ||
		pod.Spec.Containers[0].Image != "example.com/sluice:test" {
		return fmt.Errorf("pod template: %+v", pod.ObjectMeta)
	}
	if d.Spec.Selector.MatchLabels[gwdeploy.LabelGatewayName] != "web" || svc.Spec.Selector[gwdeploy.LabelGatewayName] != "web" {
		return fmt.Errorf("selectors: %v / %v", d.Spec.Selector, svc.Spec.Selector)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || portsOf(svc) != "status-port:15021/tcp,http:80/http,db-tcp:9000/tcp" {
		return fmt.Errorf("service %s ports %s", svc.Spec.Type, portsOf(svc))
	}
	return nil
}

// A Gateway of class istio created through the API server gets its
// ServiceAccount, Deployment and Service (owned by it, Istio's names,
// labels and ports); status follows its Service: no instances, then
// pending LoadBalancer, then the LoadBalancer's IP as status.addresses
// (written by gwstatus); listener edits move the Service's ports.
func TestManagedGateway(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	gw := e.gateway("web", func(g *gwv1.Gateway) {
		g.Labels = map[string]string{"team": "a"}
		g.Annotations = map[string]string{"example.com/note": "x"}
	})
	eventually(t, "provisioned", func() error { return e.provisioned(gw) })
	host := "web-istio.shop.svc.cluster.local"
	eventually(t, "no endpoints", func() error {
		st, err := e.status("web")
		if err != nil {
			return err
		}
		return wantProgrammed(st, "False", "AddressNotAssigned", fmt.Sprintf("no instances found for hostname %q", host))
	})

	// A ready pod behind the Service: the LoadBalancer is pending.
	_, err := e.kc.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-istio-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web-istio"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.2.3"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}, {Name: ptr.To("db-tcp"), Port: ptr.To[int32](9000)},
			{Name: ptr.To("status-port"), Port: ptr.To[int32](15021)}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "pending LoadBalancer", func() error {
		st, err := e.status("web")
		if err != nil {
			return err
		}
		if len(st.Addresses) != 0 {
			return fmt.Errorf("addresses %v while the LoadBalancer is pending", st.Addresses)
		}
		return wantProgrammed(st, "False", "AddressNotAssigned", fmt.Sprintf("Assigned to service(s) %s:80 and %s:9000, but failed to assign to all requested addresses: address pending for hostname %q", host, host, host))
	})
	select { // drain: the next wake is the ingress's
	case <-e.wake:
	default:
	}
	svc, _ := e.kc.CoreV1().Services("shop").Get(ctx, "web-istio", metav1.GetOptions{})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
	if _, err := e.kc.CoreV1().Services("shop").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.wake:
	case <-time.After(10 * time.Second):
		t.Fatal("the LoadBalancer's address did not wake the status writer")
	}
	eventually(t, "LoadBalancer address", func() error {
		st, err := e.status("web")
		if err != nil {
			return err
		}
		if len(st.Addresses) != 1 || st.Addresses[0].Value != "203.0.113.7" || *st.Addresses[0].Type != gwv1.IPAddressType {
			return fmt.Errorf("addresses %+v", st.Addresses)
		}
		return wantProgrammed(st, "True", "Programmed", fmt.Sprintf("Resource programmed, assigned to service(s) %s:80 and %s:9000", host, host))
	})
	checkStatusWritten(t, e, gw)

	// Listeners edited: the Service's ports follow.
	cur, _ := e.gwc.GatewayV1().Gateways("shop").Get(ctx, "web", metav1.GetOptions{})
	cur.Spec.Listeners = []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
		{Name: "tls", Port: 443, Protocol: gwv1.TLSProtocolType, TLS: &gwv1.ListenerTLSConfig{Mode: ptr.To(gwv1.TLSModePassthrough)}}}
	if _, err := e.gwc.GatewayV1().Gateways("shop").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ports follow the listeners", func() error {
		svc, err := e.kc.CoreV1().Services("shop").Get(ctx, "web-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p := portsOf(svc); p != "status-port:15021/tcp,http:80/http,tls:443/tls" {
			return fmt.Errorf("ports %s", p)
		}
		return nil
	})

	// Deleted: the objects go with the Gateway by their owner references
	// (checked above; no garbage collector runs here); its status goes.
	if err := e.gwc.GatewayV1().Gateways("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "forgotten", func() error {
		if _, ok := e.dep.Status("shop", "web"); ok {
			return fmt.Errorf("still reported")
		}
		return nil
	})
}

// statusWriter is gwstatus's writer as the control plane builds it, with
// the deployment controller's addresses and conditions.
func (e *env) statusWriter() *gwstatus.Writer {
	return &gwstatus.Writer{Client: dynamic.NewForConfigOrDie(e.cfg),
		Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(e.kc.Discovery())),
		Deployed: func(ns, name string) ([]gwv1.GatewayStatusAddress, []gatewayapi.Condition, bool) {
			st, ok := e.dep.Status(ns, name)
			return st.Addresses, st.Conditions(), ok
		}}
}

// checkStatusWritten writes a computed status through gwstatus with the
// deployment's addresses and Programmed: they land on the cluster's
// Gateway.
func checkStatusWritten(t *testing.T, e *env, gw *gwv1.Gateway) {
	t.Helper()
	ctx := context.Background()
	w := e.statusWriter()
	ok := gatewayapi.Condition{Type: "Accepted", Status: "True", Reason: "Accepted"}
	prog := gatewayapi.Condition{Type: "Programmed", Status: "True", Reason: "Programmed", Message: "served by router proxies"}
	if _, err := w.Write(ctx, &gatewayapi.Status{Gateways: []*gatewayapi.GatewayStatus{{Namespace: "shop", Name: gw.Name,
		Conditions: []gatewayapi.Condition{ok, prog}}}}); err != nil {
		t.Fatal(err)
	}
	u, err := w.Client.Resource(gwv1.SchemeGroupVersion.WithResource("gateways")).Namespace("shop").Get(ctx, gw.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addrs, _, _ := unstructured.NestedSlice(u.Object, "status", "addresses")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	var msg any
	for _, c := range conds {
		if c.(map[string]any)["type"] == "Programmed" {
			msg = c.(map[string]any)["message"]
		}
	}
	if len(addrs) != 1 || addrs[0].(map[string]any)["value"] != "203.0.113.7" || !strings.HasPrefix(fmt.Sprint(msg), "Resource programmed, assigned to service(s)") {
		t.Fatalf("written status: addresses %v, Programmed message %v", addrs, msg)
	}
}

// Gateways not provisioned: a manual one (spec.addresses Hostname: an
// existing Service, resolved for status only), another revision's, one
// with an annotation sluice does not implement (reported), one whose
// Service name is taken by an object no gateway controller manages (left
// alone); a ClusterIP one (networking.istio.io/service-type) reports its
// Service's hostname once it has endpoints.
func TestUnmanagedGateways(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	e.gateway("manual", func(g *gwv1.Gateway) {
		g.Spec.Addresses = []gwv1.GatewaySpecAddress{{Type: ptr.To(gwv1.HostnameAddressType), Value: "ingress"}}
	})
	e.gateway("canary", func(g *gwv1.Gateway) { g.Labels = map[string]string{"istio.io/rev": "canary"} })
	e.gateway("odd", func(g *gwv1.Gateway) { g.Annotations = map[string]string{"gateway.istio.io/unknown": "1"} })
	if _, err := e.kc.CoreV1().Services("shop").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "taken-istio"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 1234}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.gateway("taken", nil)
	e.gateway("internal", func(g *gwv1.Gateway) {
		g.Annotations = map[string]string{"networking.istio.io/service-type": "ClusterIP"}
		g.Labels = map[string]string{"team": "b"}
		g.Spec.Infrastructure = &gwv1.GatewayInfrastructure{Labels: map[gwv1.LabelKey]gwv1.LabelValue{"tier": "edge"}}
	})
	e.gateway("byip", func(g *gwv1.Gateway) {
		g.Annotations = map[string]string{"networking.istio.io/service-type": "ClusterIP", "networking.istio.io/address-type": "IPAddress"}
	})

	eventually(t, "statuses", func() error {
		st, err := e.status("manual")
		if err != nil {
			return err
		}
		if err := wantProgrammed(st, "False", "AddressNotUsable", `hostname "ingress.shop.svc.cluster.local" not found`); err != nil {
			return err
		}
		if st, err = e.status("odd"); err != nil {
			return err
		}
		if err := wantProgrammed(st, "False", "Invalid", "annotation gateway.istio.io/unknown is not supported"); err != nil {
			return err
		}
		if _, ok := e.dep.Status("shop", "canary"); ok {
			return fmt.Errorf("another revision's Gateway reported")
		}
		return nil
	})
	eventually(t, "ClusterIP Service", func() error {
		svc, err := e.kc.CoreV1().Services("shop").Get(ctx, "internal-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			return fmt.Errorf("type %s", svc.Spec.Type)
		}
		// spec.infrastructure.labels replace the Gateway's own.
		if svc.Labels["tier"] != "edge" || svc.Labels["team"] != "" {
			return fmt.Errorf("labels %v: want spec.infrastructure's", svc.Labels)
		}
		return nil
	})
	// The taken Service is reconciled past (its Deployment exists) but
	// not changed.
	eventually(t, "taken", func() error {
		if _, err := e.kc.AppsV1().Deployments("shop").Get(ctx, "taken-istio", metav1.GetOptions{}); err != nil {
			return err
		}
		return nil
	})
	svc, _ := e.kc.CoreV1().Services("shop").Get(ctx, "taken-istio", metav1.GetOptions{})
	if len(svc.OwnerReferences) != 0 || svc.Labels[gwdeploy.LabelManaged] != "" || len(svc.Spec.Ports) != 1 {
		t.Fatalf("an unmanaged Service was taken over: %+v", svc.ObjectMeta)
	}
	for _, name := range []string{"manual-istio", "canary-istio", "odd-istio"} {
		if _, err := e.kc.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment %s: %v, want none", name, err)
		}
	}
	// The ClusterIP gateway with a ready endpoint: its hostname is its
	// address (class istio reports hostnames).
	if _, err := e.kc.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "internal-istio-1", Labels: map[string]string{discoveryv1.LabelServiceName: "internal-istio"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.2.4"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}, {Name: ptr.To("db-tcp"), Port: ptr.To[int32](9000)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.checkAddressTypes()
}

// Which Gateways the default revision deploys, as Istio's tag watcher: its
// own revision and the tags pointing at it (a tag webhook labelled
// istio.io/tag=prod, istio.io/rev=default); a Gateway without istio.io/rev
// goes by its namespace's.
func TestGatewayRevisionTags(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	_, err := e.kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-revision-tag-prod", Labels: map[string]string{"istio.io/tag": "prod", "istio.io/rev": "default"}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "canary-ns",
		Labels: map[string]string{"istio.io/rev": "canary"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.gateway("tagged", func(g *gwv1.Gateway) { g.Labels = map[string]string{"istio.io/rev": "prod"} })
	e.gateway("other-tag", func(g *gwv1.Gateway) { g.Labels = map[string]string{"istio.io/rev": "staging"} })
	inCanary := &gwv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "in-canary", Namespace: "canary-ns"},
		Spec: gwv1.GatewaySpec{GatewayClassName: "istio", Listeners: []gwv1.Listener{{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType}}}}
	if _, err := e.gwc.GatewayV1().Gateways("canary-ns").Create(ctx, inCanary, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.gateway("plain", nil)
	eventually(t, "tagged and plain deployed", func() error {
		for _, name := range []string{"tagged-istio", "plain-istio"} {
			if _, err := e.kc.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	if _, err := e.kc.AppsV1().Deployments("shop").Get(ctx, "other-tag-istio", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("another tag's Gateway deployed: %v", err)
	}
	if _, err := e.kc.AppsV1().Deployments("canary-ns").Get(ctx, "in-canary-istio", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Gateway of a canary namespace deployed by the default revision: %v", err)
	}
}

// checkAddressTypes: ClusterIP Gateways with a ready endpoint report their
// Service's cluster IP (networking.istio.io/address-type IPAddress) or,
// by default for class istio, its hostname.
func (e *env) checkAddressTypes() {
	t, ctx := e.t, context.Background()
	t.Helper()
	// networking.istio.io/address-type IPAddress: the Service's cluster IP.
	if _, err := e.kc.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "byip-istio-1", Labels: map[string]string{discoveryv1.LabelServiceName: "byip-istio"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.1.2.5"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](80)}, {Name: ptr.To("db-tcp"), Port: ptr.To[int32](9000)}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "cluster IP address", func() error {
		st, err := e.status("byip")
		if err != nil {
			return err
		}
		svc, err := e.kc.CoreV1().Services("shop").Get(ctx, "byip-istio", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(st.Addresses) != 1 || st.Addresses[0].Value != svc.Spec.ClusterIP || *st.Addresses[0].Type != gwv1.IPAddressType {
			return fmt.Errorf("addresses %+v, want the cluster IP %s", st.Addresses, svc.Spec.ClusterIP)
		}
		return nil
	})
	eventually(t, "ClusterIP address", func() error {
		st, err := e.status("internal")
		if err != nil {
			return err
		}
		if len(st.Addresses) != 1 || st.Addresses[0].Value != "internal-istio.shop.svc.cluster.local" {
			return fmt.Errorf("addresses %+v", st.Addresses)
		}
		return wantProgrammed(st, "True", "Programmed", "assigned to service(s)")
	})
}

// Without Gateway API CRDs the controller is synced at once (no Gateway to
// resolve) and waits; installed later, their Gateways are deployed.
func TestGatewayCRDsInstalledLater(t *testing.T) {
	c := kubetest.Start(t, kubetest.Options{})
	e := startOn(t, c)
	eventually(t, "synced without CRDs", func() error {
		if !e.dep.Synced() {
			return fmt.Errorf("not synced")
		}
		return nil
	})
	c.InstallGatewayAPICRDs(t)
	e.istioClass()
	e.gateway("late", nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.kc.AppsV1().Deployments("shop").Get(context.Background(), "late-istio", metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Gateway not deployed after its CRDs were installed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
