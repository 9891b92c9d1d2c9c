package xdsclient

import "google.golang.org/protobuf/proto"

// Resources is one consistent view of everything received: for each type,
// the resources by name and the version they came with (SotW
// version_info, Delta system_version_info).
//
// A view is immutable once handed to Apply: the maps of a type a response
// did not touch are shared between successive views, and every resource
// message is shared too, so nobody may change them.
type Resources struct {
	Items    map[string]map[string]proto.Message
	Versions map[string]string
	// VHDSAnswered holds the route configurations subscribed to over
	// VHDS that a VirtualHost response has answered since (vhds.go):
	// until then their virtual hosts are not known, and the route
	// configuration is not complete (Envoy's VhdsSubscription init
	// target). Shared between views like Items; never changed.
	VHDSAnswered map[string]bool
}

// emptyResources is the view before anything was accepted.
func emptyResources() Resources {
	return Resources{Items: map[string]map[string]proto.Message{}, Versions: map[string]string{}, VHDSAnswered: map[string]bool{}}
}

// withType is r with the resources of one type replaced by items at
// version. Only the two small outer maps are new: the other types' maps
// are shared with r (a response costs what it changed, not the whole
// view).
func (r Resources) withType(typeURL string, items map[string]proto.Message, version string) Resources {
	out := Resources{
		Items:        make(map[string]map[string]proto.Message, len(r.Items)+1),
		Versions:     make(map[string]string, len(r.Versions)+1),
		VHDSAnswered: r.VHDSAnswered,
	}
	for t, m := range r.Items {
		out.Items[t] = m
	}
	for t, v := range r.Versions {
		out.Versions[t] = v
	}
	out.Items[typeURL] = items
	out.Versions[typeURL] = version
	return out
}

// resourceVersions are the per-resource versions Delta xDS gave the
// accepted resources, by type then name: what a reconnecting client
// announces in initial_resource_versions. Like Resources, a type's map is
// replaced, never changed, once accepted.
type resourceVersions map[string]map[string]string

func (v resourceVersions) withType(typeURL string, names map[string]string) resourceVersions {
	out := make(resourceVersions, len(v)+1)
	for t, m := range v {
		out[t] = m
	}
	out[typeURL] = names
	return out
}
