// Package leader elects one control plane among replicas for the work
// only one may do (status writes, the webhook's caBundle), with a
// coordination.k8s.io Lease, as istiod's leaderelection
// (pilot/pkg/leaderelection) does; every replica serves xDS.
package leader

import (
	"context"
	"errors"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Options configure an election.
type Options struct {
	Client kubernetes.Interface
	// Namespace and Name of the Lease.
	Namespace, Name string
	// Identity of this replica (unique among them: the pod name, or the
	// host name and process id).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod as client-go's; zero:
	// 15 s, 10 s and 2 s (its documented defaults).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// Run takes part in the election until ctx ends: whenever this replica
// becomes the leader, lead runs with a context that ends when it stops
// being the leader (or ctx ends); then it stands again.
func Run(ctx context.Context, opts Options, lead func(ctx context.Context)) error {
	if opts.Client == nil || opts.Name == "" || opts.Namespace == "" || opts.Identity == "" {
		return errors.New("leader election: client, lease namespace/name and identity are required")
	}
	if opts.LeaseDuration == 0 {
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = 15*time.Second, 10*time.Second, 2*time.Second
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: opts.Namespace, Name: opts.Name},
		Client:     opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: opts.Identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: opts.LeaseDuration, RenewDeadline: opts.RenewDeadline, RetryPeriod: opts.RetryPeriod,
			ReleaseOnCancel: true, Name: opts.Name,
			Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: lead, OnStoppedLeading: func() {}},
		})
		if err != nil {
			return err
		}
		le.Run(ctx) // returns when leadership is lost or ctx ends
	}
	return nil
}
