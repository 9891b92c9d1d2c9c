package xdsgen

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// IstioMetadataKey is the filter_metadata key Istio puts its own
// annotations under (istio/istio pilot/pkg/networking/util:
// IstioMetadataKey).
const IstioMetadataKey = "istio"

// configKebabKinds are the kinds whose config Istio names on what it
// generates, as gvk.KebabKind spells them.
var configKebabKinds = map[config.Kind]string{
	config.KindVirtualService:  "virtual-service",
	config.KindDestinationRule: "destination-rule",
}

// addConfigInfoMetadata records, as Istio's util.AddConfigInfoMetadata
// does, the config a route or cluster came from in its istio
// filter_metadata: config "/apis/networking.istio.io/v1/namespaces/<ns>/
// <kebab-kind>/<name>" (istioctl proxy-config prints it as name.ns).
// Istio stores networking config at the schema's version, v1, whatever
// version the YAML was written in; so does this. md may be nil.
func addConfigInfoMetadata(md *core.Metadata, r *config.Resource) *core.Metadata {
	kind, ok := configKebabKinds[r.Kind]
	if !ok {
		return md
	}
	path := "/apis/networking.istio.io/v1/namespaces/" + r.Namespace + "/" + kind + "/" + r.Name
	return setIstioMetadata(md, "config", path)
}

// addSubsetToMetadata adds the subset name to a cluster's istio metadata
// once its config is there (util.AddSubsetToMetadata: only where the
// "istio" metadata already exists).
func addSubsetToMetadata(md *core.Metadata, subset string) {
	if md.GetFilterMetadata()[IstioMetadataKey] == nil || subset == "" {
		return
	}
	setIstioMetadata(md, "subset", subset)
}

func setIstioMetadata(md *core.Metadata, key, value string) *core.Metadata {
	if md == nil {
		md = &core.Metadata{}
	}
	if md.FilterMetadata == nil {
		md.FilterMetadata = map[string]*structpb.Struct{}
	}
	s := md.FilterMetadata[IstioMetadataKey]
	if s == nil {
		s = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		md.FilterMetadata[IstioMetadataKey] = s
	}
	s.Fields[key] = structpb.NewStringValue(value)
	return md
}
