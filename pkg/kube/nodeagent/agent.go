// Package nodeagent is istio-cni's node agent (cni/pkg/nodeagent) inside
// sluice's node proxy: it watches the Pods on its node and the
// Namespaces, decides which pods are in ambient mode as istio-cni does
// (ShouldEnroll), finds each one's network namespace in /proc
// (FindNetns), installs the in-pod capture there (capture.ApplyInpod),
// hands the pod to the node proxy (what istio-cni sends ztunnel over ZDS)
// and marks it ambient.istio.io/redirection: enabled; it undoes all of
// that when the pod leaves ambient mode, ends or is deleted.
package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/sluice-mesh/sluice/pkg/capture"
	"github.com/sluice-mesh/sluice/pkg/proxy/ztunnel"
)

// Dataplane is the node proxy the agent hands pods to.
type Dataplane interface {
	AddPod(ztunnel.PodSpec)
	RemovePod(namespace, name string)
}

// Options configure an Agent.
type Options struct {
	Client kubernetes.Interface
	// Node is this node's name: only Pods with spec.nodeName equal to it
	// are watched.
	Node      string
	Dataplane Dataplane
	// Self is the node proxy's own pod, never captured (istio-cni skips
	// the ztunnel pods, util.IsZtunnelPod).
	Self types.NamespacedName
	// Capture are the in-pod capture settings before a pod's annotations
	// (default capture.DefaultInpodOptions).
	Capture *capture.InpodOptions
	// Backend is the iptables backend (auto, legacy, nft).
	Backend capture.Backend
	// ProcRoot is where processes are looked for (default /proc).
	ProcRoot string
	// CNISocket, when set, is where the CNI plugin's events are answered
	// (pkg/kube/cniplugin): pods captured as their sandbox is set up.
	CNISocket string
	// CNIInstall, when set (with CNISocket), chains the CNI plugin into
	// the node's network configuration at start and unchains it at exit
	// when the agent's DaemonSet is gone.
	CNIInstall *CNIInstall
	Logger     *slog.Logger
}

// Agent runs the node agent.
type Agent struct {
	opts       Options
	log        *slog.Logger
	queue      workqueue.TypedRateLimitingInterface[types.NamespacedName]
	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister
	factories  []kubeinformers.SharedInformerFactory
	synced     []cache.InformerSynced
	events     record.EventRecorder
	broadcast  record.EventBroadcaster

	mu sync.Mutex
	// captured are the pods captured and handed to the node proxy.
	captured map[types.NamespacedName]*captured
}

// captured is one pod in ambient mode on this node.
type captured struct {
	uid   types.UID
	netns *Netns
	ipv6  bool
}

// New prepares an agent; Run starts it.
func New(opts Options) (*Agent, error) {
	if opts.Client == nil || opts.Dataplane == nil {
		return nil, errors.New("node agent: a Kubernetes client and a node proxy are required")
	}
	if opts.Node == "" {
		return nil, errors.New("node agent: the node's name is required (--node or NODE_NAME)")
	}
	if opts.Capture == nil {
		d := capture.DefaultInpodOptions()
		opts.Capture = &d
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &Agent{opts: opts, log: opts.Logger.With("node", opts.Node), captured: map[types.NamespacedName]*captured{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](200*time.Millisecond, 30*time.Second))}
	// Pods of this node only, as istio-cni's informer
	// (cni/pkg/nodeagent/server.go: fields.OneTermEqualSelector on spec.nodeName).
	onNode := kubeinformers.NewSharedInformerFactoryWithOptions(opts.Client, 0, kubeinformers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.Node).String()
	}))
	all := kubeinformers.NewSharedInformerFactory(opts.Client, 0)
	pods, nss := onNode.Core().V1().Pods(), all.Core().V1().Namespaces()
	a.pods, a.namespaces = pods.Lister(), nss.Lister()
	a.factories = []kubeinformers.SharedInformerFactory{onNode, all}
	a.synced = []cache.InformerSynced{pods.Informer().HasSynced, nss.Informer().HasSynced}
	_, _ = pods.Informer().AddEventHandler(handler(a.enqueuePod))
	_, _ = nss.Informer().AddEventHandler(handler(a.enqueueNamespace))
	a.broadcast = record.NewBroadcaster()
	a.events = a.broadcast.NewRecorder(kubeScheme, corev1.EventSource{Component: "sluice-node-agent", Host: opts.Node})
	return a, nil
}

func handler(f func(any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: f, UpdateFunc: func(_, n any) { f(n) }, DeleteFunc: f}
}

func (a *Agent) enqueuePod(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		a.queue.Add(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	}
}

// enqueueNamespace: a namespace's label decides for its pods.
func (a *Agent) enqueueNamespace(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return
	}
	pods, _ := a.pods.Pods(ns.Name).List(everything)
	for _, p := range pods {
		a.queue.Add(types.NamespacedName{Namespace: p.Namespace, Name: p.Name})
	}
}

// Run watches and reconciles until ctx ends; the pods it captured are
// then released from the node proxy but keep their capture and
// annotation (istio-cni leaves them so on its own restart: a new agent
// takes them over).
func (a *Agent) Run(ctx context.Context) error {
	// Chained first and unchained last (if the DaemonSet is gone),
	// whenever Run ends: pods wait for the socket meanwhile.
	if a.opts.CNIInstall != nil {
		if a.opts.CNISocket == "" {
			return fmt.Errorf("node agent: the CNI plugin needs the agent's socket")
		}
		if err := a.installCNI(); err != nil {
			return err
		}
		defer a.cleanupCNI()
	}
	a.broadcast.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.opts.Client.CoreV1().Events("")})
	defer a.broadcast.Shutdown()
	for _, f := range a.factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range a.factories {
			f.Shutdown()
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), a.synced...) {
		return fmt.Errorf("node agent: informers not synced: %w", ctx.Err())
	}
	a.log.Info("node agent watching pods", "node", a.opts.Node)
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	if a.opts.CNISocket != "" {
		go func() {
			if err := a.serveCNI(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("CNI plugin socket", "err", err)
			}
		}()
	}
	for a.next(ctx) {
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, c := range a.captured {
		a.opts.Dataplane.RemovePod(key.Namespace, key.Name)
		c.netns.Close()
	}
	a.captured = map[types.NamespacedName]*captured{}
	return nil
}

func (a *Agent) next(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	if err := a.reconcile(ctx, key); err != nil {
		a.log.Warn("pod not reconciled, retrying", "pod", key.String(), "err", err)
		a.queue.AddRateLimited(key)
		return true
	}
	a.queue.Forget(key)
	return true
}
