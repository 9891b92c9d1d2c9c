package xdsserver

import (
	"fmt"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// codec is grpc's proto codec (encoding/proto codecV2) except for how
// discovery responses are marshalled.
//
// A discovery response is mostly the resources it carries, and those are
// shared: every proxy with the same view is sent the same Resource,
// marshalled once per push (marshalCache). grpc's codec would copy them
// into one buffer per response (from a pool whose size classes jump from
// 32 KiB to 1 MiB), and marshal each Resource wrapper again for every
// proxy. Instead each Resource keeps its own encoding as an entry of a
// response's `resources` field (encodeEntries), made once with it, and the
// server sends a response as the small rest of the message followed by
// those shared entries, which grpc's transport writes out without joining
// them: a response costs its header. Other messages are marshalled into a
// buffer of their own size.
type codec struct{}

// deltaResponse is a DeltaDiscoveryResponse whose resources are given as
// Resources: head holds every other field.
type deltaResponse struct {
	head  *discovery.DeltaDiscoveryResponse
	items []*Resource
}

// sotwResponse is a DiscoveryResponse whose resources are given as
// Resources: head holds every other field.
type sotwResponse struct {
	head  *discovery.DiscoveryResponse
	items []*Resource
}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *deltaResponse:
		return marshalWithEntries(m.head, m.items, (*Resource).deltaEntry)
	case *sotwResponse:
		return marshalWithEntries(m.head, m.items, (*Resource).sotwEntry)
	}
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("xds codec: marshal %T: not a proto message", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// marshalWithEntries marshals head (its resources field empty) and
// appends each item's encoded entry of the resources field. Field order
// on the wire differs from proto.Marshal's (resources last); parsers take
// fields in any order, and a repeated field keeps its own.
func marshalWithEntries(head proto.Message, items []*Resource, entry func(*Resource) mem.BufferSlice) (mem.BufferSlice, error) {
	b, err := proto.Marshal(head)
	if err != nil {
		return nil, fmt.Errorf("xds codec: response: %w", err)
	}
	out := make(mem.BufferSlice, 0, 1+len(items))
	out = append(out, mem.SliceBuffer(b))
	for _, r := range items {
		out = append(out, entry(r)...)
	}
	return out, nil
}

func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("xds codec: unmarshal into %T: not a proto message", v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// Name is the content subtype grpc negotiates: the standard one.
func (codec) Name() string { return "proto" }

// Field numbers of the messages whose encoding a Resource keeps
// (envoy/service/discovery/v3/discovery.proto, google/protobuf/any.proto).
const (
	fieldResponseResources protowire.Number = 2 // DiscoveryResponse and DeltaDiscoveryResponse .resources
	fieldResourceVersion   protowire.Number = 1 // Resource.version
	fieldResourceAny       protowire.Number = 2 // Resource.resource
	fieldResourceName      protowire.Number = 3 // Resource.name
	fieldAnyTypeURL        protowire.Number = 1
	fieldAnyValue          protowire.Number = 2
)

// wireEntries are a resource's encodings as an entry of a response's
// resources field: the DeltaDiscoveryResponse entry (a discovery.Resource:
// version, name, the Any), one buffer holding the content itself, and the
// DiscoveryResponse entry (the Any), a prefix and the same content. A
// response's pieces are few (grpc's transport gathers a frame's pieces
// into a cached list of 64; more are allocated per frame).
type wireEntries struct {
	delta, sotw mem.BufferSlice
}

// encodeEntries builds them for a resource named name at version whose
// content is the message value of type typeURL, and returns the copy of
// value inside the delta entry (the resource keeps that one; value is
// garbage). Empty strings and bytes are left out, as proto.Marshal does.
func encodeEntries(name, version, typeURL string, value []byte) (wireEntries, []byte) {
	anyBody := 0
	if typeURL != "" {
		anyBody += protowire.SizeTag(fieldAnyTypeURL) + protowire.SizeBytes(len(typeURL))
	}
	if len(value) > 0 {
		anyBody += protowire.SizeTag(fieldAnyValue) + protowire.SizeBytes(len(value))
	}
	anyHead := func(b []byte) []byte { // the Any up to its value
		if typeURL != "" {
			b = protowire.AppendTag(b, fieldAnyTypeURL, protowire.BytesType)
			b = protowire.AppendString(b, typeURL)
		}
		if len(value) > 0 {
			b = protowire.AppendTag(b, fieldAnyValue, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(len(value)))
		}
		return b
	}
	resBody := protowire.SizeTag(fieldResourceAny) + protowire.SizeBytes(anyBody)
	if version != "" {
		resBody += protowire.SizeTag(fieldResourceVersion) + protowire.SizeBytes(len(version))
	}
	if name != "" {
		resBody += protowire.SizeTag(fieldResourceName) + protowire.SizeBytes(len(name))
	}
	size := protowire.SizeTag(fieldResponseResources) + protowire.SizeBytes(resBody)
	d := make([]byte, 0, size)
	d = protowire.AppendTag(d, fieldResponseResources, protowire.BytesType)
	d = protowire.AppendVarint(d, uint64(resBody))
	if version != "" {
		d = protowire.AppendTag(d, fieldResourceVersion, protowire.BytesType)
		d = protowire.AppendString(d, version)
	}
	if name != "" {
		d = protowire.AppendTag(d, fieldResourceName, protowire.BytesType)
		d = protowire.AppendString(d, name)
	}
	d = protowire.AppendTag(d, fieldResourceAny, protowire.BytesType)
	d = protowire.AppendVarint(d, uint64(anyBody))
	d = anyHead(d)
	at := len(d)
	d = append(d, value...)
	kept := d[at:len(d):len(d)]

	s := protowire.AppendTag(nil, fieldResponseResources, protowire.BytesType)
	s = protowire.AppendVarint(s, uint64(anyBody))
	s = anyHead(s)

	e := wireEntries{delta: mem.BufferSlice{mem.SliceBuffer(d)}, sotw: mem.BufferSlice{mem.SliceBuffer(s)}}
	if len(kept) > 0 {
		e.sotw = append(e.sotw, mem.SliceBuffer(kept))
	}
	return e, kept
}
