package xdsserver

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
)

// NewSnapshot packs generated resources into a cache snapshot. Each type's
// version is a hash of its content, so a push that changes nothing for a
// proxy sends it nothing, and one that changes only routes sends only RDS.
func NewSnapshot(res *xdsgen.Resources) (*cachev3.Snapshot, error) {
	byType := map[string][]types.Resource{}
	for _, r := range res.Clusters {
		byType[resourcev3.ClusterType] = append(byType[resourcev3.ClusterType], r)
	}
	for _, r := range res.Endpoints {
		byType[resourcev3.EndpointType] = append(byType[resourcev3.EndpointType], r)
	}
	for _, r := range res.Listeners {
		byType[resourcev3.ListenerType] = append(byType[resourcev3.ListenerType], r)
	}
	for _, r := range res.Routes {
		byType[resourcev3.RouteType] = append(byType[resourcev3.RouteType], r)
	}
	snap := &cachev3.Snapshot{}
	for _, t := range typeOrder {
		items := byType[t]
		version, err := contentVersion(items)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %s: %w", shortType(t), err)
		}
		idx := cachev3.GetResponseType(t)
		snap.Resources[idx] = cachev3.NewResources(version, items)
	}
	return snap, nil
}

func contentVersion(items []types.Resource) (string, error) {
	type named struct {
		name string
		data []byte
	}
	list := make([]named, 0, len(items))
	for _, it := range items {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(it)
		if err != nil {
			return "", err
		}
		list = append(list, named{name: cachev3.GetResourceName(it), data: b})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	h := sha256.New()
	for _, n := range list {
		h.Write([]byte(n.name))
		h.Write([]byte{0})
		h.Write(n.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
