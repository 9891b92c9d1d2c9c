package controlplane

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config/filesource"
	"github.com/sluice-mesh/sluice/pkg/config/kubesource"
	"github.com/sluice-mesh/sluice/pkg/config/mergesource"
	"github.com/sluice-mesh/sluice/pkg/kube/inject"
)

// newSource makes the config source opts name: the folder, the cluster,
// or the cluster with the folder added (mergesource). With a cluster it
// waits for the first list, so that a MeshConfig from the cluster's
// ConfigMap replaces opts.Mesh before the CA reads its trust domain and
// certificate lifetime (istiod also reads its mesh config before it
// starts).
func newSource(opts *Options) (mergesource.Source, error) {
	logf := func(f string, a ...any) { opts.Logger.Info(fmt.Sprintf(f, a...)) }
	warnf := func(f string, a ...any) { opts.Logger.Warn(fmt.Sprintf(f, a...)) }
	var files, kube mergesource.Source
	if opts.ConfigDir != "" {
		src, err := filesource.New(filesource.Options{Dir: opts.ConfigDir, DefaultNamespace: "default", Logf: logf, Warnf: warnf})
		if err != nil {
			return nil, err
		}
		files = src
	}
	if opts.Kube != nil {
		src, err := kubesource.New(kubesource.Options{RESTConfig: opts.Kube, Revision: orDefaultRevision(opts.Revision), Logf: logf, Warnf: warnf})
		if err != nil {
			return nil, err
		}
		snap, err := src.Load()
		if err != nil {
			return nil, err
		}
		if snap.Mesh != nil {
			opts.Mesh = snap.Mesh
		}
		kube = src
	}
	switch {
	case files != nil && kube != nil:
		return mergesource.New(kube, files), nil
	case kube != nil:
		return kube, nil
	case files != nil:
		return files, nil
	}
	return nil, errors.New("no config source: give a config folder, a kubeconfig or both")
}

// orDefaultRevision is the revision as istiod's REVISION: "default" when
// unset (Istio's chart), so objects labelled for another revision are not
// the default control plane's.
func orDefaultRevision(rev string) string {
	if rev == "" {
		return inject.DefaultRevision
	}
	return rev
}

// sourceName names the config source in logs.
func (c *Controller) sourceName() string {
	switch {
	case c.opts.Kube != nil && c.opts.ConfigDir != "":
		return c.opts.Kube.Host + " + " + c.opts.ConfigDir
	case c.opts.Kube != nil:
		return c.opts.Kube.Host
	}
	return c.opts.ConfigDir
}

// applyMesh makes the source's MeshConfig (nil: none, so opts.Mesh) the
// one the next push uses; a changed one makes that push full. The CA's
// trust domain and certificate lifetime are read once at start: a change
// of those is logged as needing a restart.
func (c *Controller) applyMesh(m *meshv1alpha1.MeshConfig) {
	if m == nil {
		m = c.baseMesh
	}
	old := c.mesh.Load()
	if old == m || proto.Equal(old, m) {
		return
	}
	if old.GetTrustDomain() != m.GetTrustDomain() {
		c.log.Warn("MeshConfig trustDomain changed; the CA keeps the one it started with until control restarts",
			"started_with", old.GetTrustDomain(), "new", m.GetTrustDomain())
	}
	c.log.Info("MeshConfig changed; full push")
	c.mesh.Store(m)
}
