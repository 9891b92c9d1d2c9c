// Package xdsfields holds the proxy's allow-lists of xDS fields: each
// compile step names the fields of a message it honours, and every other
// field set in a received message is NACKed by name, so nothing the
// control plane sends is silently dropped (issue 7 §1).
package xdsfields

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Unsupported names the fields set in m that are not in honoured, in
// field-number order (protoreflect's Range order is undefined). A nil
// honoured map means no field is honoured.
func Unsupported(m proto.Message, honoured map[protoreflect.Name]bool) []string {
	var fds []protoreflect.FieldDescriptor
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !honoured[fd.Name()] {
			fds = append(fds, fd)
		}
		return true
	})
	sort.Slice(fds, func(i, j int) bool { return fds[i].Number() < fds[j].Number() })
	names := make([]string, len(fds))
	for i, fd := range fds {
		names[i] = string(fd.Name())
	}
	return names
}

// Table is an allow-list for a tree of messages: the honoured fields of
// each message type, by the type's full name.
type Table map[protoreflect.FullName]map[protoreflect.Name]bool

// Check checks m against t: every field set in m must be honoured by m's
// entry, and each set message field (singular, repeated or map value)
// whose type has an entry is checked in turn, unless its type is in skip
// (types the caller checks itself, where it compiles them, so that its
// errors name them). A type without an entry is a leaf the compile code
// reads whole (a Duration, a StringMatcher). The error lists every field
// not honoured by its path from m ("route.idle_timeout"), a message's own
// fields before those of the messages in it, each in field-number order.
func (t Table) Check(m proto.Message, skip ...protoreflect.FullName) error {
	var bad []string
	t.walk(m.ProtoReflect(), "", skip, &bad)
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("%s: not supported", strings.Join(bad, ", "))
}

func (t Table) walk(m protoreflect.Message, path string, skip []protoreflect.FullName, bad *[]string) {
	honoured, ok := t[m.Descriptor().FullName()]
	if !ok {
		return
	}
	for _, name := range Unsupported(m.Interface(), honoured) {
		*bad = append(*bad, path+name)
	}
	var set []protoreflect.FieldDescriptor
	m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if honoured[fd.Name()] && t.descends(fd, skip) {
			set = append(set, fd)
		}
		return true
	})
	sort.Slice(set, func(i, j int) bool { return set[i].Number() < set[j].Number() })
	for _, fd := range set {
		p := path + string(fd.Name())
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				t.walk(l.Get(i).Message(), fmt.Sprintf("%s[%d].", p, i), skip, bad)
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				t.walk(mv.Message(), fmt.Sprintf("%s[%q].", p, k.String()), skip, bad)
				return true
			})
		default:
			t.walk(v.Message(), p+".", skip, bad)
		}
	}
}

// descends reports whether fd holds messages Check looks into.
func (t Table) descends(fd protoreflect.FieldDescriptor, skip []protoreflect.FullName) bool {
	md := fd.Message()
	if fd.IsMap() {
		md = fd.MapValue().Message()
	}
	if md == nil {
		return false
	}
	if _, ok := t[md.FullName()]; !ok {
		return false
	}
	for _, s := range skip {
		if md.FullName() == s {
			return false
		}
	}
	return true
}
