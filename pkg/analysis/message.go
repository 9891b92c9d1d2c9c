package analysis

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Level is a message's severity, as Istio's diag.Level.
type Level int

// Levels, least severe first.
const (
	LevelInfo Level = iota
	LevelWarning
	LevelError
)

func (l Level) String() string {
	switch l {
	case LevelWarning:
		return "Warning"
	case LevelError:
		return "Error"
	}
	return "Info"
}

// ParseLevel reads a level name as istioctl's --output-threshold and
// --failure-threshold take it (Info, Warning, Error; case-insensitive).
func ParseLevel(s string) (Level, error) {
	for _, l := range []Level{LevelInfo, LevelWarning, LevelError} {
		if strings.EqualFold(s, l.String()) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("level %q: want Info, Warning or Error", s)
}

// MessageType is one row of messages.yaml.
type MessageType struct {
	Name        string
	Code        string
	Level       Level
	Description string
	Template    string
	Args        []string
}

// MessageTypes returns every message type Istio defines, in code order.
func MessageTypes() []*MessageType { return messageTypes }

// MessageTypeByCode returns the message type with the code (Istio's or
// sluice's own), if any.
func MessageTypeByCode(code string) (*MessageType, bool) {
	for _, t := range append(messageTypes[:len(messageTypes):len(messageTypes)], sluiceMessageTypes...) {
		if t.Code == code {
			return t, true
		}
	}
	return nil, false
}

// ResourceRef names the resource a message is about. Namespace is empty
// for cluster-scoped resources and for input that named none.
type ResourceRef struct {
	Kind      string
	Namespace string
	Name      string
}

// String is istioctl's friendly name: "Kind ns/name", or "Kind name"
// without a namespace (legacy/source/kube/origin.go FriendlyName).
func (r ResourceRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// FullName is "ns/name" (or "name"), as Istio's resource.FullName prints.
func (r ResourceRef) FullName() string {
	if r.Namespace == "" {
		return r.Name
	}
	return r.Namespace + "/" + r.Name
}

// Origin says where a resource was read: File and the 1-based Line of the
// YAML document (or of the field the message is about).
type Origin struct {
	File string
	Line int
}

// String is "file:line", or "file" when the line is unknown or the file
// is JSON (legacy/source/kube/origin.go Position.String).
func (o Origin) String() string {
	if o.File == "" {
		return ""
	}
	if o.Line <= 0 || strings.HasSuffix(o.File, ".json") {
		return o.File
	}
	return o.File + ":" + strconv.Itoa(o.Line)
}

// Message is one finding of an analyzer.
type Message struct {
	Type     *MessageType
	Resource ResourceRef
	// Origin is where Resource was read; its Line is the field's when the
	// analyzer could tell it, else the document's.
	Origin Origin
	// Args fill Type.Template.
	Args []any
}

// Code is the message's code, e.g. IST0101.
func (m Message) Code() string { return m.Type.Code }

// Level is the message type's level.
func (m Message) Level() Level { return m.Type.Level }

// Text is the message's text: its type's template filled with its args.
func (m Message) Text() string { return fmt.Sprintf(m.Type.Template, m.Args...) }

// String is the line istioctl prints for the message (diag.Message.String):
// `Warning [IST0101] (VirtualService default/reviews file.yaml:12) Referenced ...`.
func (m Message) String() string {
	origin := m.Resource.String()
	if o := m.Origin.String(); o != "" {
		origin += " " + o
	}
	return fmt.Sprintf("%v [%v] (%s) %s", m.Level(), m.Code(), origin, m.Text())
}

// SortMessages orders messages and drops duplicates as istiod's analyzer
// does (diag.Messages.SortedDedupedCopy): most severe first, then by code,
// resource (kind/name/namespace) and printed line; two messages are
// duplicates when they print the same line.
func SortMessages(ms []Message) []Message {
	out := append([]Message(nil), ms...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		switch {
		case a.Level() != b.Level():
			return a.Level() > b.Level()
		case a.Code() != b.Code():
			return a.Code() < b.Code()
		case a.Resource.comparator() != b.Resource.comparator():
			return a.Resource.comparator() < b.Resource.comparator()
		}
		return a.String() < b.String()
	})
	deduped := out[:0]
	for _, m := range out {
		if len(deduped) > 0 && deduped[len(deduped)-1].String() == m.String() {
			continue
		}
		deduped = append(deduped, m)
	}
	return deduped
}

// comparator is kube Origin.Comparator: kind/name/namespace.
func (r ResourceRef) comparator() string { return r.Kind + "/" + r.Name + "/" + r.Namespace }
