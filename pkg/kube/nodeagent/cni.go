package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/pkg/kube/cniplugin"
)

// serveCNI answers the CNI plugin's events on the socket (istio-cni's
// CNI event server, cni/pkg/nodeagent/cni-watcher.go): an ambient pod's
// sandbox is captured before the runtime starts its containers.
func (a *Agent) serveCNI(ctx context.Context) error {
	path := a.opts.CNISocket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("node agent: cni socket: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("node agent: cni socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("node agent: cni socket: %w", err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	a.log.Info("serving the CNI plugin", "socket", path)
	return cniplugin.Serve(l, cniplugin.ServeOptions{Add: a.cniAdd, Del: a.cniDel, Logger: a.log})
}

// cniAdd captures a pod whose sandbox is being set up, if it is enrolled:
// the pod and its namespace are read from the API server (the informers
// may not have them yet), the rules are installed in the netns the
// runtime named, the pod is handed to the node proxy and annotated. The
// plugin's error fails the pod's set-up.
func (a *Agent) cniAdd(ctx context.Context, e cniplugin.Event) error {
	key := types.NamespacedName{Namespace: e.PodNamespace, Name: e.PodName}
	if key == a.opts.Self {
		return nil
	}
	pod, err := a.getPod(ctx, key, types.UID(e.PodUID))
	if err != nil {
		return err
	}
	ns, err := a.opts.Client.CoreV1().Namespaces().Get(ctx, pod.Namespace, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("namespace %s: %w", pod.Namespace, err)
	}
	if Terminal(pod) || !ShouldEnroll(pod, ns.Labels) {
		return nil
	}
	opts, err := a.captureOptions(pod)
	if err != nil {
		return fmt.Errorf("pod %s: %w", key, err) // not started uncaptured
	}
	ino, err := inode(e.Netns)
	if err != nil {
		return fmt.Errorf("pod %s: netns %s: %w", key, e.Netns, err)
	}
	h, err := open(e.Netns, ino)
	if err != nil {
		return fmt.Errorf("pod %s: %w", key, err)
	}
	a.mu.Lock()
	cur := a.captured[key]
	a.mu.Unlock()
	if cur != nil {
		// A new sandbox for the same pod (the runtime made it again).
		a.release(ctx, key)
	}
	return a.enrollIn(ctx, pod, h, e.IPs, opts)
}

// cniDel releases a pod whose sandbox is torn down (the informer's
// deletion does the same; whichever comes first).
func (a *Agent) cniDel(ctx context.Context, e cniplugin.Event) error {
	key := types.NamespacedName{Namespace: e.PodNamespace, Name: e.PodName}
	a.mu.Lock()
	cur := a.captured[key]
	a.mu.Unlock()
	if cur != nil && (e.PodUID == "" || types.UID(e.PodUID) == cur.uid) {
		a.release(ctx, key)
	}
	return nil
}

// getPod reads the pod from the API server, waiting briefly for it: the
// runtime may set the sandbox up right as the pod is created.
func (a *Agent) getPod(ctx context.Context, key types.NamespacedName, uid types.UID) (*corev1.Pod, error) {
	for {
		pod, err := a.opts.Client.CoreV1().Pods(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
		if err == nil && (uid == "" || pod.UID == uid) {
			return pod, nil
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("pod %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s (uid %s) not found: %w", key, uid, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
