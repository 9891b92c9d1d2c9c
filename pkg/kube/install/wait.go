package install

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// WaitReady waits until every Deployment of the manifest has all its
// replicas updated and available for its latest generation, and every
// DaemonSet its pods on every node it schedules to (istioctl's readiness
// wait), or timeout; the error names those that are not.
func (c *Client) WaitReady(ctx context.Context, m *Manifest, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var notReady []string
		for _, obj := range m.Objects {
			notReadyWhy := notReadyCheck[obj.GetKind()]
			if notReadyWhy == nil {
				continue
			}
			ri, _, err := c.resource(obj)
			if err != nil {
				return err
			}
			cur, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if err != nil {
				notReady = append(notReady, fmt.Sprintf("%s: %v", describe(obj), err))
				continue
			}
			if why := notReadyWhy(cur); why != "" {
				notReady = append(notReady, describe(obj)+": "+why)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v (--readiness-timeout; --wait=false skips the wait): %s", timeout, strings.Join(notReady, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// notReadyCheck says why an object of a kind WaitReady waits for is not
// ready yet ("" when it is).
var notReadyCheck = map[string]func(*unstructured.Unstructured) string{
	"Deployment": deploymentNotReady,
	"DaemonSet":  daemonSetNotReady,
}

// daemonSetNotReady: every node it schedules to runs its latest pod
// template, available (istioctl's daemonsetsReady).
func daemonSetNotReady(d *unstructured.Unstructured) string {
	observed, _, _ := unstructured.NestedInt64(d.Object, "status", "observedGeneration")
	desired, _, _ := unstructured.NestedInt64(d.Object, "status", "desiredNumberScheduled")
	updated, _, _ := unstructured.NestedInt64(d.Object, "status", "updatedNumberScheduled")
	available, _, _ := unstructured.NestedInt64(d.Object, "status", "numberAvailable")
	switch {
	case observed < d.GetGeneration():
		return "generation not observed yet"
	case updated < desired || available < desired:
		return fmt.Sprintf("%d/%d nodes available", available, desired)
	}
	return ""
}

func deploymentNotReady(d *unstructured.Unstructured) string {
	want, found, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	gen := d.GetGeneration()
	observed, _, _ := unstructured.NestedInt64(d.Object, "status", "observedGeneration")
	updated, _, _ := unstructured.NestedInt64(d.Object, "status", "updatedReplicas")
	available, _, _ := unstructured.NestedInt64(d.Object, "status", "availableReplicas")
	switch {
	case observed < gen:
		return "generation not observed yet"
	case updated < want || available < want:
		return fmt.Sprintf("%d/%d replicas available", available, want)
	}
	return ""
}
