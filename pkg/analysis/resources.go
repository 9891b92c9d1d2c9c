package analysis

import (
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// FromResources makes a snapshot of resources already decoded and
// validated (the control plane's store), in their order; each message's
// origin is the resource's file.
func FromResources(resources []*config.Resource, mesh *meshv1alpha1.MeshConfig) *Snapshot {
	objects := make([]*Object, 0, len(resources))
	for _, r := range resources {
		objects = append(objects, &Object{Resource: r, Origin: Origin{File: r.Source.File}})
	}
	return NewSnapshot(objects, mesh)
}

// Finding is a message in the JSON form `sluice analyze -o json` and
// the control plane's /debug/analysis print.
type Finding struct {
	Code     string `json:"code"`
	Level    string `json:"level"`
	Resource string `json:"resource"`
	Message  string `json:"message"`
	Origin   string `json:"origin,omitempty"`
}

// Finding is m in its JSON form.
func (m Message) Finding() Finding {
	return Finding{Code: m.Code(), Level: m.Level().String(), Resource: m.Resource.String(), Message: m.Text(), Origin: m.Origin.String()}
}
