package accesslog

// Text is one compiled Envoy format string (command operators, as the
// text access log has them), rendered on its own: what a tracing custom
// tag's `value` (Istio's Telemetry formatter tag) is made of.
type Text struct{ f textFormat }

// CompileText compiles an Envoy format string.
func CompileText(s string) (*Text, error) {
	t, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	return &Text{f: textFormat{t: t}}, nil
}

// Append renders the format for e onto dst (absent values as "-").
func (t *Text) Append(dst []byte, e *Entry) []byte { return t.f.appendLine(dst, e) }
