// Package xdsredact hides secrets in xDS dumps as Envoy's config_dump
// does (source/common/protobuf/utility.cc MessageUtil::redact): every
// field annotated `(udpa.annotations.sensitive) = true`, such as
// TlsCertificate.private_key, has its string and bytes values replaced
// with "[redacted]", including inside typed_config Any messages. Admin
// and debug endpoints dump through it so a private key never leaves the
// process by them.
package xdsredact

import (
	"github.com/cncf/xds/go/udpa/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// Redacted is what a sensitive value becomes.
const Redacted = "[redacted]"

// Redact returns a copy of m with its sensitive values redacted; m is not
// changed.
func Redact(m proto.Message) proto.Message {
	c := proto.Clone(m)
	redact(c.ProtoReflect(), false)
	return c
}

func sensitive(fd protoreflect.FieldDescriptor) bool {
	opts, ok := fd.Options().(*descriptorpb.FieldOptions)
	return ok && opts != nil && proto.GetExtension(opts, annotations.E_Sensitive).(bool)
}

// redact walks m; under a sensitive field (all) every string and bytes
// value is replaced.
func redact(m protoreflect.Message, all bool) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		redactAny(a, all)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		hide := all || sensitive(fd)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for i := 0; i < l.Len(); i++ {
				if fd.Message() != nil {
					redact(l.Get(i).Message(), hide)
				} else if hide {
					if r, ok := redactedScalar(fd); ok {
						l.Set(i, r)
					}
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			mp.Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Message() != nil {
					redact(mv.Message(), hide)
				} else if hide {
					if r, ok := redactedScalar(fd.MapValue()); ok {
						mp.Set(k, r)
					}
				}
				return true
			})
		case fd.Message() != nil:
			redact(m.Mutable(fd).Message(), hide)
		case hide:
			if r, ok := redactedScalar(fd); ok {
				m.Set(fd, r)
			}
		}
		return true
	})
}

func redactedScalar(fd protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(Redacted), true
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(Redacted)), true
	}
	return protoreflect.Value{}, false
}

// redactAny redacts inside a typed_config whose type is known; an
// unknown type under a sensitive field loses its value.
func redactAny(a *anypb.Any, all bool) {
	inner, err := a.UnmarshalNew()
	if err != nil {
		if all {
			a.Value = []byte(Redacted)
		}
		return
	}
	redact(inner.ProtoReflect(), all)
	opts := proto.MarshalOptions{Deterministic: true}
	if b, err := opts.Marshal(inner); err == nil {
		a.Value = b
	}
}
