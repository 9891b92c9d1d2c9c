package nodeagent

import (
	"context"
	"fmt"

	"istio.io/api/annotation"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/sluice-mesh/sluice/pkg/capture"
	"github.com/sluice-mesh/sluice/pkg/netns"
	"github.com/sluice-mesh/sluice/pkg/proxy/ztunnel"
)

var (
	kubeScheme = scheme.Scheme
	everything = labels.Everything()
)

// The redirection annotation's patches (istio-cni cni/pkg/util/podutil.go
// annotationEnabledPatch, annotationRemovePatch), sent as JSON merge
// patches to the pods/status subresource as istio-cni does (it may change
// metadata and needs less privilege than pods).
var (
	annotationEnabledPatch = []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annotation.AmbientRedirection.Name, redirectionEnabled))
	annotationRemovePatch  = []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, annotation.AmbientRedirection.Name))
)

// reconcile brings one pod's capture in line with what istio-cni would
// decide for it now (cni/pkg/nodeagent/informers.go reconcilePod).
func (a *Agent) reconcile(ctx context.Context, key types.NamespacedName) error {
	if key == a.opts.Self {
		return nil
	}
	pod, err := a.pods.Pods(key.Namespace).Get(key.Name)
	if apierrors.IsNotFound(err) {
		a.release(ctx, key) // deleted: nothing to unannotate
		return nil
	}
	if err != nil {
		return err
	}
	a.mu.Lock()
	cur := a.captured[key]
	a.mu.Unlock()
	if cur != nil && cur.uid != pod.UID { // deleted and made again meanwhile
		a.release(ctx, key)
		cur = nil
	}
	var nsLabels map[string]string
	if ns, err := a.namespaces.Get(pod.Namespace); err == nil {
		nsLabels = ns.Labels
	}
	switch {
	case Terminal(pod):
		// A finished pod keeps its annotation, as istio-cni's removal of
		// a terminated pod does (RemovePodFromMesh with isDelete).
		a.release(ctx, key)
		return nil
	case !ShouldEnroll(pod, nsLabels):
		return a.unenroll(ctx, pod, cur != nil)
	case cur != nil:
		if !Enrolled(pod) {
			return a.patch(ctx, pod, annotationEnabledPatch)
		}
		return nil
	}
	ips := PodIPs(pod)
	if len(ips) == 0 {
		a.log.Debug("pod has no IP yet", "pod", key.String())
		return nil // its status update with an IP brings it back
	}
	return a.enroll(ctx, pod, ips)
}

// enroll captures the pod where /proc finds its network namespace
// (enrollIn). A pod asking for what the capture does not offer is
// refused before the search, with a Warning Event, and not retried until
// it changes (its update comes back here).
func (a *Agent) enroll(ctx context.Context, pod *corev1.Pod, ips []string) error {
	opts, err := a.captureOptions(pod)
	if err != nil {
		return nil
	}
	h, err := FindNetns(a.opts.ProcRoot, pod.UID, ips)
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return a.enrollIn(ctx, pod, h, ips, opts)
}

// captureOptions are the pod's capture settings, or the refusal (logged,
// a Warning Event on the pod).
func (a *Agent) captureOptions(pod *corev1.Pod) (capture.InpodOptions, error) {
	opts, err := CaptureOptions(pod, *a.opts.Capture)
	if err != nil {
		a.log.Error("pod not captured", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		a.events.Event(pod, corev1.EventTypeWarning, "AmbientCaptureRefused", err.Error())
	}
	return opts, err
}

// enrollIn captures the pod in its held namespace h
// (capture.ReconcileInpod), hands it to the node proxy and annotates it
// (istio-cni's AddPodToMesh, then AnnotateEnrolledPod). h is the agent's
// from here on (closed on failure).
func (a *Agent) enrollIn(ctx context.Context, pod *corev1.Pod, h *Netns, ips []string, opts capture.InpodOptions) error {
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	// Rules already there (an earlier agent's) are kept when they are
	// these: no moment without capture on a restart.
	var applied bool
	if err := netns.Do(h.Path(), func() (err error) {
		applied, err = capture.ReconcileInpod(ctx, opts, a.opts.Backend)
		return err
	}); err != nil {
		h.Close()
		err = fmt.Errorf("pod %s: in-pod capture: %w", key, err)
		a.events.Event(pod, corev1.EventTypeWarning, "AmbientCaptureFailed", err.Error())
		return err
	}
	a.mu.Lock()
	a.captured[key] = &captured{uid: pod.UID, netns: h, ipv6: opts.EnableIPv6}
	a.mu.Unlock()
	a.opts.Dataplane.AddPod(ztunnel.PodSpec{Namespace: pod.Namespace, Name: pod.Name, Netns: h.Path()})
	a.log.Info("pod captured", "pod", key.String(), "netns", h.Inode, "ips", ips, "rules_installed", applied)
	if !Enrolled(pod) {
		return a.patch(ctx, pod, annotationEnabledPatch)
	}
	return nil
}

// unenroll takes a pod out of ambient mode (a label changed): released
// from the node proxy, its capture removed, its annotation removed
// (istio-cni's RemovePodFromMesh, AnnotateUnenrollPod). A pod annotated
// by an earlier agent is found in /proc to undo its capture.
func (a *Agent) unenroll(ctx context.Context, pod *corev1.Pod, ours bool) error {
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	if !ours && !Enrolled(pod) {
		return nil
	}
	if ours {
		a.release(ctx, key)
	} else if h, err := FindNetns(a.opts.ProcRoot, pod.UID, PodIPs(pod)); err == nil {
		err := netns.Do(h.Path(), func() error { return capture.RemoveInpod(ctx, a.opts.Backend, a.opts.Capture.EnableIPv6) })
		h.Close()
		if err != nil {
			return fmt.Errorf("pod %s: remove in-pod capture: %w", key, err)
		}
	}
	a.log.Info("pod left ambient mode", "pod", key.String())
	return a.patch(ctx, pod, annotationRemovePatch)
}

// release stops serving a captured pod and removes its capture while its
// namespace is held.
func (a *Agent) release(ctx context.Context, key types.NamespacedName) {
	a.mu.Lock()
	c := a.captured[key]
	delete(a.captured, key)
	a.mu.Unlock()
	if c == nil {
		return
	}
	a.opts.Dataplane.RemovePod(key.Namespace, key.Name)
	err := netns.Do(c.netns.Path(), func() error { return capture.RemoveInpod(ctx, a.opts.Backend, c.ipv6) })
	c.netns.Close()
	a.log.Info("pod released", "pod", key.String())
	if err != nil {
		// The pod is no longer served either way; a rule left behind in a
		// namespace still in use is reported, not retried.
		a.log.Error("in-pod capture not removed", "pod", key.String(), "err", err)
	}
}

// patch applies an annotation patch to the pod's status subresource.
func (a *Agent) patch(ctx context.Context, pod *corev1.Pod, body []byte) error {
	_, err := a.opts.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pod %s/%s: annotate %s: %w", pod.Namespace, pod.Name, annotation.AmbientRedirection.Name, err)
	}
	return nil
}
