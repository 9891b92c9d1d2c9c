package nodeagent

import (
	"context"
	"fmt"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice-mesh/sluice/pkg/kube/cniplugin"
)

// CNIInstall is where the agent chains the CNI plugin on its node
// (istio-cni's install-cni, in the agent as istio-cni's node agent runs
// it): the node's CNI directories as mounted into the DaemonSet's pod,
// and the DaemonSet whose presence at exit says the plugin stays.
type CNIInstall struct {
	ConfDir, BinDir string
	// DaemonSet is the agent's own DaemonSet (namespace/name).
	DaemonSetNamespace, DaemonSet string
	ExcludeNamespaces             []string
}

// installCNI chains the plugin (cniplugin.Install) with the agent's
// socket.
func (a *Agent) installCNI() error {
	in := a.opts.CNIInstall
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("node agent: cni install: %w", err)
	}
	path, err := cniplugin.Install(cniplugin.InstallOptions{ConfDir: in.ConfDir, BinDir: in.BinDir, Binary: self,
		AgentSocket: a.opts.CNISocket, ExcludeNamespaces: in.ExcludeNamespaces})
	if err != nil {
		return fmt.Errorf("node agent: %w", err)
	}
	a.log.Info("CNI plugin chained", "config", path)
	return nil
}

// cleanupCNI runs at exit: the plugin is unchained unless the agent's
// DaemonSet is still there and not being deleted (an upgrade or a node
// reboot: the next agent answers the plugin, and pods wait for it rather
// than start uncaptured), as istio-cni's ShouldStopCleanup. A DaemonSet
// gone, being deleted, or no longer readable (the uninstall removed the
// agent's permissions) means the profile is uninstalled: pods must start
// without the agent.
func (a *Agent) cleanupCNI() {
	in := a.opts.CNIInstall
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := a.opts.Client.AppsV1().DaemonSets(in.DaemonSetNamespace).Get(ctx, in.DaemonSet, metav1.GetOptions{})
	switch {
	case err == nil && ds.DeletionTimestamp == nil:
		a.log.Info("exiting; DaemonSet still present (an upgrade or a reboot): the CNI plugin stays chained",
			"daemonset", in.DaemonSetNamespace+"/"+in.DaemonSet)
		return
	case err != nil && !apierrors.IsNotFound(err) && !apierrors.IsUnauthorized(err) && !apierrors.IsForbidden(err):
		// Unknown: keep the plugin (pods wait, fail closed) and say so.
		a.log.Error("exiting; the DaemonSet could not be read: the CNI plugin stays chained", "err", err)
		return
	}
	if err := cniplugin.Uninstall(in.ConfDir, in.BinDir); err != nil {
		a.log.Error("CNI plugin not unchained", "err", err)
		return
	}
	a.log.Info("exiting; DaemonSet gone: the CNI plugin unchained", "daemonset", in.DaemonSetNamespace+"/"+in.DaemonSet)
}
