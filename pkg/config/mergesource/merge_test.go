package mergesource

import (
	"context"
	"errors"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
	"github.com/sluice-mesh/sluice/pkg/config/filesource"
)

// fixed is a source whose snapshot the test sets.
type fixed struct {
	snap filesource.Snapshot
	err  error
}

func (f *fixed) Load() (filesource.Snapshot, error)               { return f.snap, f.err }
func (f *fixed) Run(ctx context.Context, _ chan<- struct{}) error { <-ctx.Done(); return nil }

func res(kind config.Kind, name, file string) *config.Resource {
	r := &config.Resource{Kind: kind, Meta: config.Meta{Namespace: "default", Name: name}, Source: config.Source{File: file}}
	if file != "kubernetes" { // the kube source's resources have no document number
		r.Source.Doc = 1
	}
	return r
}

func TestMergeFolderAddsClusterWins(t *testing.T) {
	kube := &fixed{snap: filesource.Snapshot{Version: 1, Resources: []*config.Resource{
		res(config.KindVirtualService, "reviews", "kubernetes"), res(config.KindServiceEntry, "ext", "kubernetes")},
		Mesh: &meshv1alpha1.MeshConfig{TrustDomain: "cluster.example"}}}
	files := &fixed{snap: filesource.Snapshot{Version: 1, Resources: []*config.Resource{
		res(config.KindVirtualService, "reviews", "dir/vs.yaml"), res(config.KindDestinationRule, "reviews", "dir/dr.yaml")}}}
	m := New(kube, files)
	snap, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range snap.Resources {
		got = append(got, r.Key().String()+"@"+r.Source.File)
	}
	want := "DestinationRule default/reviews@dir/dr.yaml ServiceEntry default/ext@kubernetes VirtualService default/reviews@kubernetes"
	if strings.Join(got, " ") != want {
		t.Errorf("resources\n got %v\nwant %v", strings.Join(got, " "), want)
	}
	if len(snap.Errors) != 1 || !strings.Contains(snap.Errors[0].Error(), "dir/vs.yaml") || !strings.Contains(snap.Errors[0].Error(), "also defined in kubernetes, which wins") {
		t.Errorf("errors %v, want one naming both sources", snap.Errors)
	}
	if snap.Mesh.GetTrustDomain() != "cluster.example" {
		t.Errorf("mesh %v", snap.Mesh)
	}

	again, _ := m.Load()
	if again.Version != snap.Version {
		t.Errorf("Version moved without a change: %d -> %d", snap.Version, again.Version)
	}
	files.snap.Version = 2
	files.snap.Resources = files.snap.Resources[1:]
	third, _ := m.Load()
	if third.Version <= snap.Version || len(third.Errors) != 0 {
		t.Errorf("after the folder dropped its duplicate: version %d (was %d), errors %v", third.Version, snap.Version, third.Errors)
	}

	files.err = errors.New("folder unreadable")
	if _, err := m.Load(); err == nil {
		t.Error("a source's error is not returned")
	}
}
