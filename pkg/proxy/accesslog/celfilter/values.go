package celfilter

import (
	"errors"
	"reflect"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// The CEL types of the attributes that are not strings.
var attrKinds = map[Attr]ref.Type{
	ResponseCode: types.IntType, ResponseFlags: types.IntType, ResponseSize: types.IntType,
	SourcePort: types.IntType, DestinationPort: types.IntType, ConnectionMTLS: types.BoolType,
}

var errNotIterable = errors.New("attribute maps cannot be iterated")

// rootMap is one attribute root (request, response, ...) as a CEL map
// whose values are read from the source only when the expression asks.
type rootMap struct {
	src    Source
	fields map[string]Attr
}

func (m *rootMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	a, ok := m.fields[string(k)]
	if !ok {
		return nil, false
	}
	switch a {
	case RequestHeaders:
		return &headerMap{src: m.src}, true
	case ResponseHeaders:
		return &headerMap{src: m.src, response: true}, true
	}
	v, ok := m.src.Attr(a)
	if !ok {
		return nil, false
	}
	switch attrKinds[a] {
	case types.IntType:
		return types.Int(v.Int), true
	case types.BoolType:
		return types.Bool(v.Bool), true
	}
	return types.String(v.Str), true
}

func (m *rootMap) Get(key ref.Val) ref.Val {
	v, ok := m.Find(key)
	if !ok {
		return types.NewErr("no such attribute: %v", key)
	}
	return v
}

func (m *rootMap) Contains(key ref.Val) ref.Val {
	_, ok := m.Find(key)
	return types.Bool(ok)
}

func (m *rootMap) Iterator() traits.Iterator { return nil }
func (m *rootMap) Size() ref.Val             { return types.NewErr("attribute maps have no size") }
func (m *rootMap) ConvertToNative(reflect.Type) (any, error) {
	return nil, errNotIterable
}
func (m *rootMap) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return types.MapType
	}
	return types.NewErr("type conversion error from map to %v", t)
}
func (m *rootMap) Equal(ref.Val) ref.Val { return types.False }
func (m *rootMap) Type() ref.Type        { return types.MapType }
func (m *rootMap) Value() any            { return m }

// headerMap is request.headers or response.headers: header names are
// looked up case-insensitively, as Envoy's lower-cased header maps.
type headerMap struct {
	src      Source
	response bool
}

func (m *headerMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	v, ok := m.src.Header(m.response, string(k))
	if !ok {
		return nil, false
	}
	return types.String(v), true
}

func (m *headerMap) Get(key ref.Val) ref.Val {
	v, ok := m.Find(key)
	if !ok {
		return types.NewErr("no such header: %v", key)
	}
	return v
}

func (m *headerMap) Contains(key ref.Val) ref.Val {
	_, ok := m.Find(key)
	return types.Bool(ok)
}

func (m *headerMap) Iterator() traits.Iterator { return nil }
func (m *headerMap) Size() ref.Val             { return types.NewErr("header maps have no size") }
func (m *headerMap) ConvertToNative(reflect.Type) (any, error) {
	return nil, errNotIterable
}
func (m *headerMap) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return types.MapType
	}
	return types.NewErr("type conversion error from map to %v", t)
}
func (m *headerMap) Equal(ref.Val) ref.Val { return types.False }
func (m *headerMap) Type() ref.Type        { return types.MapType }
func (m *headerMap) Value() any            { return m }
