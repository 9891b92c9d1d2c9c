package xdsserver

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// codec is grpc's proto codec (encoding/proto codecV2) except that a
// message is marshalled into a buffer of its own size. grpc's codec takes
// buffers from a pool whose size classes jump from 32 KiB to 1 MiB: a
// control plane sending a thousand 100 KiB configs at once held a
// thousand megabytes of buffers, ten times what it sent. A buffer of its
// own is garbage once written.
type codec struct{}

func (codec) Marshal(v any) (mem.BufferSlice, error) {
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
