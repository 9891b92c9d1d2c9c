package accesslog

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

func fileLog(t *testing.T, fl *filev3.FileAccessLog) *accesslogv3.AccessLog {
	t.Helper()
	typed, err := anypb.New(fl)
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: FileLoggerName, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed}}
}

func text(s string) *filev3.FileAccessLog_LogFormat {
	return &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
		Format: &core.SubstitutionFormatString_TextFormatSource{TextFormatSource: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: s}}}}}
}

// Everything the proxy cannot honour is refused, naming it.
func TestCompileNACK(t *testing.T) {
	dir := t.TempDir()
	stream, _ := anypb.New(&streamv3.StdoutAccessLog{})
	withFilter := fileLog(t, &filev3.FileAccessLog{Path: dir + "/a"})
	withFilter.Filter = &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{NotHealthCheckFilter: &accesslogv3.NotHealthCheckFilter{}}}
	omit := text("%RESPONSE_CODE%")
	omit.LogFormat.OmitEmptyValues = true
	cases := []struct {
		name string
		al   *accesslogv3.AccessLog
		want string
	}{
		{"unknown operator", fileLog(t, &filev3.FileAccessLog{Path: dir + "/a", AccessLogFormat: text("%RESPONSE_CODE% %UPSTREAM_PEER_SUBJECT%\n")}), "%UPSTREAM_PEER_SUBJECT% is not supported"},
		{"operator argument", fileLog(t, &filev3.FileAccessLog{Path: dir + "/a", AccessLogFormat: text("%START_TIME(%s)%\n")}), "%START_TIME(%s)%: arguments are not supported"},
		{"stray percent", fileLog(t, &filev3.FileAccessLog{Path: dir + "/a", AccessLogFormat: text("100% done\n")}), "starts no command"},
		{"not_health_check filter", withFilter, "filter: only the extension filter envoy.access_loggers.extension_filters.cel"},
		{"other logger", &accesslogv3.AccessLog{Name: "envoy.access_loggers.stdout", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: stream}}, "only envoy.access_loggers.file"},
		{"omit_empty_values", fileLog(t, &filev3.FileAccessLog{Path: dir + "/a", AccessLogFormat: omit}), "omit_empty_values: not supported"},
		{"json list", fileLog(t, &filev3.FileAccessLog{Path: dir + "/a", AccessLogFormat: &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{
			Format: &core.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: map[string]*structpb.Value{"l": structpb.NewListValue(&structpb.ListValue{})}}}}}}), "json_format.l: only strings"},
		{"unopenable path", fileLog(t, &filev3.FileAccessLog{Path: dir + "/no/such/dir/a"}), "access log file"},
	}
	for _, c := range cases {
		_, err := Compile([]*accesslogv3.AccessLog{c.al})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

// Files are opened once and shared by every logger of a path, across
// compiles (pushes).
func TestSinkShared(t *testing.T) {
	p := t.TempDir() + "/x.log"
	a, err := Compile([]*accesslogv3.AccessLog{fileLog(t, &filev3.FileAccessLog{Path: p})})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile([]*accesslogv3.AccessLog{fileLog(t, &filev3.FileAccessLog{Path: p, AccessLogFormat: &filev3.FileAccessLog_Format{Format: "%RESPONSE_CODE%\n"}})})
	if err != nil {
		t.Fatal(err)
	}
	if a[0].sink != b[0].sink {
		t.Fatal("two compiles of one path opened two files")
	}
}

func testEntry() *Entry {
	r := httptest.NewRequest("GET", "http://web:8080/a%20b?x=1", nil)
	r.Header.Set("X-Envoy-Original-Path", "/orig")
	r.Header.Set("User-Agent", strings.Repeat("u", 40))
	info := &httpfilter.RequestInfo{Start: time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC), Status: 503, UpstreamLocal: netip.MustParseAddrPort("10.1.1.2:40000"),
		Flags: httpfilter.FlagUF | httpfilter.FlagURX, Details: "upstream connect error: refused", BytesReceived: 7, BytesSent: 11,
		Upstream: "10.0.0.1:80", Cluster: "outbound|80||web", Route: "default"}
	return &Entry{Info: info, Req: r, RespHeader: http.Header{"X-Envoy-Upstream-Service-Time": {"4"}},
		Conn: &httpfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.1.1.1:5555"), LocalAddr: netip.MustParseAddrPort("10.1.1.2:80")},
		End:  info.Start.Add(42 * time.Millisecond)}
}

func TestTextValues(t *testing.T) {
	f, err := compileText("[%START_TIME%] %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:PATH)% %REQ(USER-AGENT):5% %RESPONSE_CODE% %RESPONSE_FLAGS% "+
		"%RESPONSE_CODE_DETAILS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %UPSTREAM_HOST% "+
		"%UPSTREAM_CLUSTER% %DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %REQUESTED_SERVER_NAME% %UPSTREAM_LOCAL_ADDRESS% %ROUTE_NAME%\n", "t")
	if err != nil {
		t.Fatal(err)
	}
	got := string(f.appendLine(nil, testEntry()))
	want := "[2024-05-06T07:08:09.123Z] /orig /a%20b?x=1 uuuuu 503 UF,URX upstream_connect_error:_refused 7 11 42 4 10.0.0.1:80 " +
		"outbound|80||web 10.1.1.1:5555 10.1.1.2 - 10.1.1.2:40000 default\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestJSONValues(t *testing.T) {
	js := &structpb.Struct{Fields: map[string]*structpb.Value{
		"code": structpb.NewStringValue("%RESPONSE_CODE%"), "sni": structpb.NewStringValue("%REQUESTED_SERVER_NAME%"),
		"mixed": structpb.NewStringValue("%RESPONSE_CODE%/%REQUESTED_SERVER_NAME%"),
		"ua":    structpb.NewStringValue("%REQ(X-Q)%"),
		"n":     structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"d": structpb.NewStringValue("%DURATION%")}}),
	}}
	f, err := compileJSON(js, "json_format")
	if err != nil {
		t.Fatal(err)
	}
	e := testEntry()
	e.Req.Header.Set("X-Q", "a\"b\\c\x01")
	got := string(f.appendLine(nil, e))
	want := `{"code":503,"mixed":"503/-","n":{"d":42},"sni":null,"ua":"a\"b\\c\u0001"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// Logging a request allocates nothing once the pools are warm.
func TestLogAllocs(t *testing.T) {
	ls, err := Compile([]*accesslogv3.AccessLog{fileLog(t, &filev3.FileAccessLog{Path: t.TempDir() + "/a"})})
	if err != nil {
		t.Fatal(err)
	}
	e := testEntry()
	if n := testing.AllocsPerRun(100, func() { ls.Log(e) }); n > 0 {
		t.Errorf("%v allocations per line", n)
	}
}

// BenchmarkLog is the cost of one line in Istio's text format (as
// xdsgen.EnvoyTextLogFormat) and in a JSON format, format and buffer only.
func BenchmarkLog(b *testing.B) {
	const istio = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"
	js := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, k := range []string{"%START_TIME%", "%REQ(:METHOD)%", "%RESPONSE_CODE%", "%RESPONSE_FLAGS%", "%RESPONSE_CODE_DETAILS%",
		"%BYTES_SENT%", "%DURATION%", "%UPSTREAM_HOST%", "%UPSTREAM_CLUSTER_RAW%", "%DOWNSTREAM_REMOTE_ADDRESS%"} {
		js.Fields[strings.ToLower(strings.Trim(k, "%"))] = structpb.NewStringValue(k)
	}
	dir := b.TempDir()
	for _, bc := range []struct {
		name string
		f    *filev3.FileAccessLog_LogFormat
	}{
		{"text", text(istio)},
		{"json", &filev3.FileAccessLog_LogFormat{LogFormat: &core.SubstitutionFormatString{Format: &core.SubstitutionFormatString_JsonFormat{JsonFormat: js}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ls, err := Compile([]*accesslogv3.AccessLog{fileLogB(b, &filev3.FileAccessLog{Path: dir + "/" + bc.name, AccessLogFormat: bc.f})})
			if err != nil {
				b.Fatal(err)
			}
			e := testEntry()
			b.ReportAllocs()
			for range b.N {
				ls.Log(e)
			}
		})
	}
}

func fileLogB(b *testing.B, fl *filev3.FileAccessLog) *accesslogv3.AccessLog {
	typed, err := anypb.New(fl)
	if err != nil {
		b.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: FileLoggerName, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: typed}}
}
