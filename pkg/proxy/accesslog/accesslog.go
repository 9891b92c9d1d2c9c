// Package accesslog is Envoy's file access logger
// (envoy.access_loggers.file, FileAccessLog) for the connection manager's
// and tcp_proxy's access_log: the format (text with Envoy's command
// operators, or json_format) compiled once per config, each completed
// request or connection filling the values into a pooled buffer and
// appending the line to its file's buffer, written off the request path.
package accesslog

import (
	"fmt"
	"strings"
	"sync"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

// FileLoggerName is Envoy's name for the file access logger.
const FileLoggerName = "envoy.access_loggers.file"

// DefaultFormat is Envoy's default access log format, used when a
// FileAccessLog has no format (source/common/formatter/substitution_format_string.cc).
const DefaultFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" " +
	"%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% " +
	"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" " +
	"\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

// Logger is one compiled access_log entry.
type Logger struct {
	format formatter
	sink   *Sink
	// filter, when set, decides per entry whether a line is written
	// (Envoy's access log filters, filter.go).
	filter entryFilter
}

// Loggers are a connection manager's or tcp_proxy's access_log, in order.
type Loggers []*Logger

// Log writes one line per logger for e.
func (ls Loggers) Log(e *Entry) {
	for _, l := range ls {
		l.Log(e)
	}
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Log formats e into a pooled buffer and appends it to the sink.
func (l *Logger) Log(e *Entry) {
	if l.filter != nil && !l.filter.match(e) {
		return
	}
	bp := linePool.Get().(*[]byte)
	line := l.format.appendLine((*bp)[:0], e)
	l.sink.write(line)
	if cap(line) <= 64<<10 {
		*bp = line[:0]
		linePool.Put(bp)
	}
}

// Path is the file the logger writes.
func (l *Logger) Path() string { return l.sink.path }

// fileFields are the FileAccessLog fields honoured; any other is NACKed.
var fileFields = map[protoreflect.Name]bool{"path": true, "format": true, "log_format": true}

// formatFields are the SubstitutionFormatString fields honoured.
var formatFields = map[protoreflect.Name]bool{
	"text_format": true, "text_format_source": true, "json_format": true, "json_format_options": true,
}

// Compile compiles an access_log list. Only the file logger exists, with
// Envoy's CEL extension filter, the response flag filter and an
// and_filter of those as its filters (filter.go); another filter or
// logger or any field or command operator the proxy does
// not implement is an error naming it. Files are opened once and shared
// (Open): a push keeping a path keeps its file.
func Compile(als []*accesslogv3.AccessLog) (Loggers, error) {
	var out Loggers
	for i, al := range als {
		l, err := compileOne(al)
		if err != nil {
			return nil, fmt.Errorf("access_log[%d] (%s): %w", i, al.GetName(), err)
		}
		out = append(out, l)
	}
	return out, nil
}

func compileOne(al *accesslogv3.AccessLog) (*Logger, error) {
	var filter entryFilter
	if f := al.GetFilter(); f != nil {
		var err error
		if filter, err = compileFilter(f); err != nil {
			return nil, err
		}
	}
	tc := al.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("typed_config is required")
	}
	var fl filev3.FileAccessLog
	if err := tc.UnmarshalTo(&fl); err != nil {
		return nil, fmt.Errorf("only %s (FileAccessLog) is supported, got %s", FileLoggerName, tc.GetTypeUrl())
	}
	if err := fl.ValidateAll(); err != nil {
		return nil, err
	}
	if bad := xdsfields.Unsupported(&fl, fileFields); len(bad) > 0 {
		return nil, fmt.Errorf("%s: not supported", strings.Join(bad, ", "))
	}
	f, err := compileFormat(&fl)
	if err != nil {
		return nil, err
	}
	sink, err := Open(fl.Path)
	if err != nil {
		return nil, err
	}
	return &Logger{format: f, sink: sink, filter: filter}, nil
}

func compileFormat(fl *filev3.FileAccessLog) (formatter, error) {
	switch {
	case fl.GetFormat() != "":
		return compileText(fl.GetFormat(), "format")
	case fl.GetLogFormat() != nil:
		return compileSubstitution(fl.GetLogFormat())
	}
	return compileText(DefaultFormat, "default format")
}

func compileSubstitution(sf *core.SubstitutionFormatString) (formatter, error) {
	if bad := xdsfields.Unsupported(sf, formatFields); len(bad) > 0 {
		return nil, fmt.Errorf("log_format: %s: not supported", strings.Join(bad, ", "))
	}
	switch {
	case sf.GetTextFormat() != "":
		return compileText(sf.GetTextFormat(), "log_format.text_format")
	case sf.GetTextFormatSource() != nil:
		src := sf.GetTextFormatSource()
		if _, ok := src.Specifier.(*core.DataSource_InlineString); !ok {
			return nil, fmt.Errorf("log_format.text_format_source: only inline_string is supported")
		}
		return compileText(src.GetInlineString(), "log_format.text_format_source")
	case sf.GetJsonFormat() != nil:
		f, err := compileJSON(sf.GetJsonFormat(), "log_format.json_format")
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return nil, fmt.Errorf("log_format: no format")
}

func compileText(s, where string) (formatter, error) {
	t, err := parseTemplate(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &textFormat{t: t}, nil
}

// CheckFormat compiles a text format string, so the control plane can
// refuse a MeshConfig accessLogFormat the proxies would NACK.
func CheckFormat(s string) error {
	_, err := parseTemplate(s)
	return err
}

// CheckJSONFormat compiles a json_format the same way.
func CheckJSONFormat(s *structpb.Struct) error {
	_, err := compileJSON(s, "json_format")
	return err
}
