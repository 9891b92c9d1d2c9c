package config

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// normalizeDurations rewrites Go-style durations ("30ms", "1m30s", "24h")
// in a spec's JSON into the "<seconds>s" form protojson accepts. Istio
// decodes with the legacy jsonpb, which takes any time.ParseDuration
// string, so users' YAML has those. The walk follows the message
// descriptor, so only real Duration fields are touched.
func normalizeDurations(raw []byte, md protoreflect.MessageDescriptor) []byte {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return raw // protojson will report the syntax error
	}
	if !walkDurations(v, md) {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// walkDurations normalizes durations under v; it reports whether it changed anything.
func walkDurations(v any, md protoreflect.MessageDescriptor) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	changed := false
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil {
			continue
		}
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				continue
			}
			if m, ok := val.(map[string]any); ok {
				for k, mv := range m {
					if s, ok := fixDuration(mv, fd.MapValue().Message()); ok {
						m[k] = s
						changed = true
					} else if walkDurations(mv, fd.MapValue().Message()) {
						changed = true
					}
				}
			}
		case fd.Kind() != protoreflect.MessageKind:
		case fd.IsList():
			if list, ok := val.([]any); ok {
				for i, item := range list {
					if s, ok := fixDuration(item, fd.Message()); ok {
						list[i] = s
						changed = true
					} else if walkDurations(item, fd.Message()) {
						changed = true
					}
				}
			}
		default:
			if s, ok := fixDuration(val, fd.Message()); ok {
				obj[key] = s
				changed = true
			} else if walkDurations(val, fd.Message()) {
				changed = true
			}
		}
	}
	return changed
}

// fixDuration converts v when md is google.protobuf.Duration and v is a Go
// duration string protojson would refuse.
func fixDuration(v any, md protoreflect.MessageDescriptor) (string, bool) {
	if md.FullName() != "google.protobuf.Duration" {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		return "", false
	}
	if strings.HasSuffix(s, "s") {
		if _, err := strconv.ParseFloat(strings.TrimSuffix(s, "s"), 64); err == nil {
			return "", false // already protojson's form
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return "", false // leave it for protojson to report
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s", true
}
