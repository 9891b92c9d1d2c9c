// Package mergesource joins two config sources into one: the cluster's
// (kubesource) and a folder's (filesource), for `sluice control
// --kubeconfig K --config-dir D`. The folder adds to the cluster. A
// resource both define is the cluster's: the folder's definition is
// ignored and reported as an error naming both places until one goes, as
// the file source reports a resource two files define.
package mergesource

import (
	"context"
	"fmt"
	"sync"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
)

// Source is what the control plane reads config from: the file source,
// the kube source, or a merge of them.
type Source interface {
	Load() (filesource.Snapshot, error)
	Run(ctx context.Context, changed chan<- struct{}) error
}

// Merged is Primary with Secondary's resources added.
type Merged struct {
	// Primary wins a key both define (the cluster).
	Primary Source
	// Secondary adds the keys Primary does not define (the folder).
	Secondary Source

	mu       sync.Mutex
	versions [2]uint64
	snap     filesource.Snapshot
}

// New returns the merge of primary and secondary.
func New(primary, secondary Source) *Merged {
	return &Merged{Primary: primary, Secondary: secondary}
}

// Load loads both sources and merges them; Version moves when either
// source's does. An error from either is returned (the caller keeps its
// last good config).
func (m *Merged) Load() (filesource.Snapshot, error) {
	a, err := m.Primary.Load()
	if err != nil {
		return filesource.Snapshot{}, err
	}
	b, err := m.Secondary.Load()
	if err != nil {
		return filesource.Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap.Version != 0 && m.versions == [2]uint64{a.Version, b.Version} {
		return m.snap, nil
	}
	m.versions = [2]uint64{a.Version, b.Version}
	snap := Merge(a, b)
	snap.Version = m.snap.Version + 1
	m.snap = snap
	return snap, nil
}

// Run runs both sources, signalling on the same channel, until ctx ends
// or one fails.
func (m *Merged) Run(ctx context.Context, changed chan<- struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- m.Primary.Run(ctx, changed) }()
	go func() { errc <- m.Secondary.Run(ctx, changed) }()
	err := <-errc
	cancel()
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

// Merge returns a's resources plus those of b whose key a does not
// define; each of b's resources a overrides is an error naming both. The
// Mesh is a's, else b's. Version is left 0.
func Merge(a, b filesource.Snapshot) filesource.Snapshot {
	inA := make(map[config.Key]*config.Resource, len(a.Resources))
	for _, r := range a.Resources {
		inA[r.Key()] = r
	}
	out := filesource.Snapshot{
		Resources:   append(make([]*config.Resource, 0, len(a.Resources)+len(b.Resources)), a.Resources...),
		NotEnforced: append(append([]config.NotEnforced(nil), a.NotEnforced...), b.NotEnforced...),
		Errors:      append(append(config.Errors(nil), a.Errors...), b.Errors...),
		Mesh:        a.Mesh,
	}
	if out.Mesh == nil {
		out.Mesh = b.Mesh
	}
	for _, r := range b.Resources {
		if first := inA[r.Key()]; first != nil {
			out.Errors = append(out.Errors, &config.Error{Source: r.Source, Key: r.Key(), Field: "metadata.name",
				Err: fmt.Errorf("%s is also defined in %s, which wins; this definition is ignored until one of them is removed", r.Key(), first.Source)})
			continue
		}
		out.Resources = append(out.Resources, r)
	}
	config.SortResources(out.Resources)
	return out
}
