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
// replicas updated and available for its latest generation (istioctl's
// readiness wait), or timeout; the error names those that are not.
func (c *Client) WaitReady(ctx context.Context, m *Manifest, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var notReady []string
		for _, obj := range m.Objects {
			if obj.GetKind() != "Deployment" {
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
			if why := deploymentNotReady(cur); why != "" {
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
