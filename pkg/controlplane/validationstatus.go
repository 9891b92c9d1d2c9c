package controlplane

import (
	"context"
	"time"

	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/sluice-mesh/sluice/pkg/kube/analysisstatus"
)

// clusterMessages are the newest analysis's messages about the cluster's
// Istio objects; ok false before the first analysis finished.
func (a *analyzer) clusterMessages() (map[analysisstatus.Ref][]analysisstatus.Message, []analysisstatus.Ref, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last.cluster, a.last.clusterAll, a.last.cluster != nil
}

// wakeValidation tells the validation status writer an analysis finished.
func (c *Controller) wakeValidation() {
	select {
	case c.validationWake <- struct{}{}:
	default:
	}
}

// writeValidationWhileLeading writes the analysis messages into the
// status.validationMessages of the cluster's Istio objects after every
// analysis, retrying a failed write, until ctx ends (istiod's in-cluster
// analysis, under the status Lease). A new term's first write also clears
// what an earlier leader left on objects that now have no message.
func (c *Controller) writeValidationWhileLeading(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) {
	w := &analysisstatus.Writer{Client: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))}
	var retry <-chan time.Time
	for {
		if msgs, all, ok := c.analysis.clusterMessages(); ok {
			n, err := w.Write(ctx, msgs, all)
			retry = nil
			if err != nil && ctx.Err() == nil {
				c.log.Warn("validationMessages not written; trying again", "err", err, "in", statusRetry)
				retry = time.After(statusRetry)
			} else if n > 0 {
				c.log.Info("validationMessages written", "objects", len(msgs), "updated", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.validationWake:
		case <-retry:
		}
	}
}
