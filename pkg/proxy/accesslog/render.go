package accesslog

import (
	"fmt"
	"sort"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// formatter renders one entry as a line; compiled once per config.
type formatter interface {
	appendLine(dst []byte, e *Entry) []byte
}

// textFormat is a text format: every absent value prints "-", as Envoy's
// text formatter does.
type textFormat struct{ t template }

func (f *textFormat) appendLine(dst []byte, e *Entry) []byte {
	for i := range f.t {
		seg := &f.t[i]
		if seg.op == opLiteral {
			dst = append(dst, seg.literal...)
			continue
		}
		start := len(dst)
		var ok bool
		dst, ok = appendValue(dst, seg, e)
		if !ok {
			dst = append(dst, '-')
			continue
		}
		if seg.maxLen > 0 && len(dst)-start > seg.maxLen {
			dst = dst[:start+seg.maxLen]
		}
	}
	return dst
}

// jsonFormat is json_format: an object whose string values are format
// strings. A value that is one operator alone is typed, as Envoy's JSON
// formatter types it (a number for codes, bytes and durations, null when
// absent); other values are strings with "-" for absent operators. Keys
// are written in sorted order (Envoy's sort_properties; without it the
// order is unspecified).
type jsonFormat struct{ fields []jsonField }

type jsonField struct {
	key    []byte // the key, quoted, with the ':'
	t      template
	nested *jsonFormat
}

func compileJSON(s *structpb.Struct, path string) (*jsonFormat, error) {
	keys := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	f := &jsonFormat{}
	for _, k := range keys {
		v := s.Fields[k]
		fld := jsonField{key: append(appendJSONString(nil, k), ':')}
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			t, err := parseTemplate(x.StringValue)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", path, k, err)
			}
			fld.t = t
		case *structpb.Value_StructValue:
			n, err := compileJSON(x.StructValue, path+"."+k)
			if err != nil {
				return nil, err
			}
			fld.nested = n
		default:
			return nil, fmt.Errorf("%s.%s: only strings and nested objects are supported", path, k)
		}
		f.fields = append(f.fields, fld)
	}
	return f, nil
}

func (f *jsonFormat) appendLine(dst []byte, e *Entry) []byte {
	return append(f.appendObject(dst, e), '\n')
}

func (f *jsonFormat) appendObject(dst []byte, e *Entry) []byte {
	dst = append(dst, '{')
	for i := range f.fields {
		fld := &f.fields[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, fld.key...)
		if fld.nested != nil {
			dst = fld.nested.appendObject(dst, e)
			continue
		}
		dst = appendJSONValue(dst, fld.t, e)
	}
	return append(dst, '}')
}

// appendJSONValue writes a field's template: typed for a lone operator,
// else a string.
func appendJSONValue(dst []byte, t template, e *Entry) []byte {
	if len(t) == 1 && t[0].op != opLiteral {
		seg := &t[0]
		start := len(dst)
		v, ok := appendValue(dst, seg, e)
		if !ok {
			return append(dst[:start], "null"...)
		}
		if seg.op.numeric() && seg.maxLen == 0 {
			return v
		}
		return quoteTail(v, start, seg.maxLen)
	}
	start := len(dst)
	for i := range t {
		seg := &t[i]
		if seg.op == opLiteral {
			dst = append(dst, seg.literal...)
			continue
		}
		s := len(dst)
		var ok bool
		if dst, ok = appendValue(dst, seg, e); !ok {
			dst = append(dst, '-')
		} else if seg.maxLen > 0 && len(dst)-s > seg.maxLen {
			dst = dst[:s+seg.maxLen]
		}
	}
	return quoteTail(dst, start, 0)
}

// quoteTail turns dst[start:] (raw bytes, truncated to maxLen when set)
// into a JSON string in place.
func quoteTail(dst []byte, start, maxLen int) []byte {
	raw := dst[start:]
	if maxLen > 0 && len(raw) > maxLen {
		raw = raw[:maxLen]
	}
	if !needsEscape(raw) {
		n := len(raw)
		dst = append(dst[:start+n], 0, 0)
		copy(dst[start+1:], dst[start:start+n])
		dst[start] = '"'
		dst[start+n+1] = '"'
		return dst
	}
	tmp := append([]byte(nil), raw...) // rare: values with quotes or controls
	return appendJSONString(dst[:start], string(tmp))
}

func needsEscape(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
			i++
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			i++
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, "\\ufffd"...)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
		}
	}
	return append(dst, '"')
}
