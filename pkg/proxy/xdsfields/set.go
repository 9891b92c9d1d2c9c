package xdsfields

import "google.golang.org/protobuf/reflect/protoreflect"

// SetSomething gives field fd of m a value that is not the default, so
// that fd counts as set: one element for a list or map, an empty message
// for a message, a non-zero scalar. Tests use it to set each field not on
// an allow-list, iterating the message's descriptor, so a field added to
// go-control-plane is covered without editing them.
func SetSomething(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	switch {
	case fd.IsList():
		l := m.Mutable(fd).List()
		if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			l.Append(l.NewElement())
		} else {
			l.Append(scalar(fd))
		}
	case fd.IsMap():
		mp := m.Mutable(fd).Map()
		mp.Set(scalar(fd.MapKey()).MapKey(), mp.NewValue())
	case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
		m.Set(fd, m.NewField(fd))
	default:
		m.Set(fd, scalar(fd))
	}
}

// scalar is a non-zero value of fd's scalar kind.
func scalar(fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		if vs := fd.Enum().Values(); vs.Len() > 1 {
			return protoreflect.ValueOfEnum(vs.Get(1).Number())
		}
		return protoreflect.ValueOfEnum(1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(1)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(1)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(1)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1)
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(1)
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1)
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte("x"))
	}
	return protoreflect.ValueOfString("x")
}
