package xdsserver

import (
	"fmt"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// codec is grpc's proto codec (encoding/proto codecV2) except for how a
// response is marshalled.
//
// A discovery response is mostly the marshalled resources it carries,
// and those are shared: every proxy with the same view is sent the same
// Resource, marshalled once per push (marshalCache). grpc's codec copies
// them into one buffer per response, from a pool whose size classes jump
// from 32 KiB to 1 MiB, so a thousand proxies connecting at once cost a
// thousand copies of their configs (up to ten times that in pooled
// buffers) while the sends drain. Here a response is a BufferSlice of
// small header pieces around the resources' own bytes, which grpc's
// transport writes out without copying them into one message: a response
// costs its headers. Other messages are marshalled into a buffer of their
// own size.
type codec struct{}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *discovery.DeltaDiscoveryResponse:
		return marshalDeltaResponse(m)
	case *discovery.DiscoveryResponse:
		return marshalSotWResponse(m)
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

// Field numbers of the messages the codec splices (envoy/service/
// discovery/v3/discovery.proto, google/protobuf/any.proto).
const (
	fieldResponseResources protowire.Number = 2 // DiscoveryResponse and DeltaDiscoveryResponse
	fieldResourceAny       protowire.Number = 2 // Resource.resource
	fieldAnyTypeURL        protowire.Number = 1
	fieldAnyValue          protowire.Number = 2
)

// splicer builds a message as header bytes interleaved with borrowed
// byte slices (the resources' marshalled contents). Headers go into one
// buffer; cuts records where each borrowed slice goes in it.
type splicer struct {
	hdr  []byte
	cuts []splice
}

type splice struct {
	at  int // offset in hdr
	ext []byte
}

// copyBelow is the size under which a value is copied into the headers
// rather than borrowed: a borrowed piece costs about 70 bytes of
// bookkeeping (its cut, its BufferSlice entry, the boxed mem.Buffer).
const copyBelow = 256

// borrow places b at the current end of the header bytes: by reference,
// or copied when it is small.
func (s *splicer) borrow(b []byte) {
	if len(b) < copyBelow {
		s.hdr = append(s.hdr, b...)
		return
	}
	s.cuts = append(s.cuts, splice{at: len(s.hdr), ext: b})
}

// copiedSize is what borrow adds to the header bytes for a value of n bytes.
func copiedSize(n int) int {
	if n < copyBelow {
		return n
	}
	return 0
}

// appendAny appends an Any as a length-delimited field num: its type URL
// and the tag and length of its value into the headers, the value itself
// borrowed. An empty value is left out, as proto.Marshal does.
func (s *splicer) appendAny(num protowire.Number, a *anypb.Any) {
	typeURL, value := a.GetTypeUrl(), a.GetValue()
	size := 0
	if typeURL != "" {
		size += protowire.SizeTag(fieldAnyTypeURL) + protowire.SizeBytes(len(typeURL))
	}
	if len(value) > 0 {
		size += protowire.SizeTag(fieldAnyValue) + protowire.SizeBytes(len(value))
	}
	s.hdr = protowire.AppendTag(s.hdr, num, protowire.BytesType)
	s.hdr = protowire.AppendVarint(s.hdr, uint64(size))
	if typeURL != "" {
		s.hdr = protowire.AppendTag(s.hdr, fieldAnyTypeURL, protowire.BytesType)
		s.hdr = protowire.AppendString(s.hdr, typeURL)
	}
	if len(value) > 0 {
		s.hdr = protowire.AppendTag(s.hdr, fieldAnyValue, protowire.BytesType)
		s.hdr = protowire.AppendVarint(s.hdr, uint64(len(value)))
		s.borrow(value)
	}
}

// anyFieldSize is the encoded size of an Any as field num, tag included,
// and how much of it appendAny writes into the header bytes.
func anyFieldSize(num protowire.Number, a *anypb.Any) (size, header int) {
	if t := a.GetTypeUrl(); t != "" {
		size += protowire.SizeTag(fieldAnyTypeURL) + protowire.SizeBytes(len(t))
	}
	v := a.GetValue()
	if len(v) > 0 {
		size += protowire.SizeTag(fieldAnyValue) + protowire.SizeBytes(len(v))
	}
	size += protowire.SizeTag(num) + protowire.SizeVarint(uint64(size))
	header = size
	if len(v) > 0 {
		header += copiedSize(len(v)) - len(v)
	}
	return size, header
}

// slice is the message: header pieces and borrowed slices in order.
func (s *splicer) slice() mem.BufferSlice {
	out := make(mem.BufferSlice, 0, 2*len(s.cuts)+1)
	prev := 0
	for _, c := range s.cuts {
		if c.at > prev {
			out = append(out, mem.SliceBuffer(s.hdr[prev:c.at]))
		}
		out = append(out, mem.SliceBuffer(c.ext))
		prev = c.at
	}
	if len(s.hdr) > prev {
		out = append(out, mem.SliceBuffer(s.hdr[prev:]))
	}
	return out
}

// marshalDeltaResponse marshals m with its resources' contents borrowed.
// The fields other than resources are marshalled by the protobuf library
// (with resources cleared for the moment: the server builds each response
// for one send, nobody else reads it), then each Resource likewise
// without its Any, which is spliced in. Field order on the wire differs
// from proto.Marshal's (resources last); parsers take fields in any
// order, and repeated fields keep theirs.
func marshalDeltaResponse(m *discovery.DeltaDiscoveryResponse) (mem.BufferSlice, error) {
	resources := m.Resources
	m.Resources = nil
	defer func() { m.Resources = resources }()
	// The header bytes' exact size first, so they are one allocation.
	top := proto.Size(m)
	sizes := make([]int, len(resources))
	total := top
	for i, r := range resources {
		a := r.Resource
		r.Resource = nil
		size := proto.Size(r)
		r.Resource = a
		header := size
		if a != nil {
			anySize, anyHeader := anyFieldSize(fieldResourceAny, a)
			size += anySize
			header += anyHeader
		}
		sizes[i] = size
		total += protowire.SizeTag(fieldResponseResources) + protowire.SizeVarint(uint64(size)) + header
	}
	s := splicer{hdr: make([]byte, 0, total), cuts: make([]splice, 0, len(resources))}
	var err error
	if s.hdr, err = (proto.MarshalOptions{}).MarshalAppend(s.hdr, m); err != nil {
		return nil, fmt.Errorf("xds codec: delta response: %w", err)
	}
	for i, r := range resources {
		s.hdr = protowire.AppendTag(s.hdr, fieldResponseResources, protowire.BytesType)
		s.hdr = protowire.AppendVarint(s.hdr, uint64(sizes[i]))
		a := r.Resource
		r.Resource = nil
		s.hdr, err = proto.MarshalOptions{}.MarshalAppend(s.hdr, r)
		r.Resource = a
		if err != nil {
			return nil, fmt.Errorf("xds codec: delta response: resource %q: %w", r.GetName(), err)
		}
		if a != nil {
			s.appendAny(fieldResourceAny, a)
		}
	}
	return s.slice(), nil
}

// marshalSotWResponse marshals m with its resources' contents borrowed,
// as marshalDeltaResponse does.
func marshalSotWResponse(m *discovery.DiscoveryResponse) (mem.BufferSlice, error) {
	resources := m.Resources
	m.Resources = nil
	defer func() { m.Resources = resources }()
	total := proto.Size(m)
	for _, a := range resources {
		_, header := anyFieldSize(fieldResponseResources, a)
		total += header
	}
	s := splicer{hdr: make([]byte, 0, total), cuts: make([]splice, 0, len(resources))}
	var err error
	if s.hdr, err = (proto.MarshalOptions{}).MarshalAppend(s.hdr, m); err != nil {
		return nil, fmt.Errorf("xds codec: response: %w", err)
	}
	for _, a := range resources {
		s.appendAny(fieldResponseResources, a)
	}
	return s.slice(), nil
}
