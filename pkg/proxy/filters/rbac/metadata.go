package rbac

import (
	"fmt"
	"strings"

	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/strmatch"
)

// metaMatch is a compiled MetadataMatcher over the request's dynamic
// metadata, as Envoy's Matchers::MetadataMatcher: the value at filter and
// path (an absent value when any step is missing or not an object) is
// given to the value matcher; invert negates the result.
type metaMatch struct {
	filter string
	path   []string
	value  valueMatch
	invert bool
}

// valueMatch is a compiled ValueMatcher (Envoy's Matchers::ValueMatcher).
type valueMatch struct {
	kind     byte // 'n'ull, 'd'ouble, 's'tring, 'b'ool, 'p'resent, 'l'ist one_of, 'o'r
	str      strmatch.String
	b        bool
	exact    float64
	hasExact bool
	lo, hi   float64
	kids     []valueMatch
}

func compileMetadataNode(m *matcher.MetadataMatcher, where string) (node, error) {
	mm := &metaMatch{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, seg := range m.GetPath() {
		k, ok := seg.GetSegment().(*matcher.MetadataMatcher_PathSegment_Key)
		if !ok {
			return node{}, fmt.Errorf("%s.path[%d]: only key segments are supported", where, i)
		}
		mm.path = append(mm.path, k.Key)
	}
	if len(mm.path) == 0 {
		return node{}, fmt.Errorf("%s.path: empty", where)
	}
	v, desc, err := compileValue(m.GetValue(), where+".value")
	if err != nil {
		return node{}, err
	}
	mm.value = v
	d := fmt.Sprintf("metadata %s[%s] %s", mm.filter, strings.Join(mm.path, "."), desc)
	if mm.invert {
		d = "not (" + d + ")"
	}
	return node{kind: kMetadata, meta: mm, desc: d}, nil
}

func compileValue(v *matcher.ValueMatcher, where string) (valueMatch, string, error) {
	switch p := v.GetMatchPattern().(type) {
	case *matcher.ValueMatcher_NullMatch_:
		return valueMatch{kind: 'n'}, "is null", nil
	case *matcher.ValueMatcher_DoubleMatch:
		vm := valueMatch{kind: 'd'}
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcher.DoubleMatcher_Exact:
			vm.hasExact, vm.exact = true, d.Exact
			return vm, fmt.Sprintf("== %v", d.Exact), nil
		case *matcher.DoubleMatcher_Range:
			vm.lo, vm.hi = d.Range.GetStart(), d.Range.GetEnd()
			return vm, fmt.Sprintf("in [%v, %v)", vm.lo, vm.hi), nil
		}
		return vm, "", fmt.Errorf("%s.double_match: no pattern", where)
	case *matcher.ValueMatcher_StringMatch:
		sm, err := compileString(p.StringMatch, where+".string_match")
		if err != nil {
			return valueMatch{}, "", err
		}
		return valueMatch{kind: 's', str: sm}, describeString(p.StringMatch), nil
	case *matcher.ValueMatcher_BoolMatch:
		return valueMatch{kind: 'b', b: p.BoolMatch}, fmt.Sprintf("== %v", p.BoolMatch), nil
	case *matcher.ValueMatcher_PresentMatch:
		return valueMatch{kind: 'p', b: p.PresentMatch}, "present", nil
	case *matcher.ValueMatcher_ListMatch:
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return valueMatch{}, "", fmt.Errorf("%s.list_match: only one_of is supported", where)
		}
		kid, d, err := compileValue(one, where+".list_match.one_of")
		if err != nil {
			return valueMatch{}, "", err
		}
		return valueMatch{kind: 'l', kids: []valueMatch{kid}}, "has an element " + d, nil
	case *matcher.ValueMatcher_OrMatch:
		vm := valueMatch{kind: 'o'}
		var ds []string
		for i, m := range p.OrMatch.GetValueMatchers() {
			kid, d, err := compileValue(m, fmt.Sprintf("%s.or_match.value_matchers[%d]", where, i))
			if err != nil {
				return valueMatch{}, "", err
			}
			vm.kids = append(vm.kids, kid)
			ds = append(ds, d)
		}
		return vm, "(" + strings.Join(ds, " or ") + ")", nil
	case nil:
		return valueMatch{}, "", fmt.Errorf("%s: no match pattern", where)
	default:
		return valueMatch{}, "", fmt.Errorf("%s: %T: not supported", where, p)
	}
}

// lookup is the value at filter and path, or absent.
func (m *metaMatch) lookup(md httpfilter.Metadata) (any, bool) {
	f, ok := md[m.filter]
	if !ok {
		return nil, false
	}
	v, ok := f[m.path[0]]
	for _, k := range m.path[1:] {
		if !ok {
			return nil, false
		}
		obj, isObj := v.(map[string]any)
		if !isObj {
			return nil, false
		}
		v, ok = obj[k]
	}
	return v, ok
}

func (m *metaMatch) match(md httpfilter.Metadata) bool {
	v, ok := m.lookup(md)
	return m.value.match(v, ok) != m.invert
}

// match is ValueMatcher::match on a JSON-like value; ok false is an
// unset value (Envoy's KIND_NOT_SET), which only or/present see.
func (vm *valueMatch) match(v any, ok bool) bool {
	switch vm.kind {
	case 'n':
		return ok && v == nil
	case 'd':
		f, isNum := toFloat(v)
		if !ok || !isNum {
			return false
		}
		if vm.hasExact {
			return f == vm.exact
		}
		return vm.lo <= f && f < vm.hi
	case 's':
		s, isStr := v.(string)
		return ok && isStr && vm.str.Match(s)
	case 'b':
		b, isBool := v.(bool)
		return ok && isBool && b == vm.b
	case 'p':
		return vm.b && ok
	case 'l':
		if ss, isStrs := v.([]string); ok && isStrs {
			for _, e := range ss {
				if vm.kids[0].match(e, true) {
					return true
				}
			}
			return false
		}
		l, isList := v.([]any)
		if !ok || !isList {
			return false
		}
		for _, e := range l {
			if vm.kids[0].match(e, true) {
				return true
			}
		}
		return false
	case 'o':
		for i := range vm.kids {
			if vm.kids[i].match(v, ok) {
				return true
			}
		}
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	}
	return 0, false
}
