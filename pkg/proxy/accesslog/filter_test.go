package accesslog

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

func celLog(t testing.TB, path, expr string, _ any) *accesslogv3.AccessLog {
	ef := &celv3.ExpressionFilter{Expression: expr}
	typed, err := anypb.New(ef)
	if err != nil {
		t.Fatal(err)
	}
	fl, err := anypb.New(&filev3.FileAccessLog{Path: path, AccessLogFormat: &filev3.FileAccessLog_Format{Format: "%RESPONSE_CODE% %REQ(:PATH)%\n"}})
	if err != nil {
		t.Fatal(err)
	}
	return &accesslogv3.AccessLog{Name: FileLoggerName, ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: fl},
		Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
			Name: "envoy.access_loggers.extension_filters.cel", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: typed}}}}}
}

// TestFilterAttributes: each attribute the filter provides reads the
// entry as Envoy's attributes do (testEntry: GET /a%20b?x=1 to web:8080,
// 503 UF,URX from 10.0.0.1:80, downstream 10.1.1.1:5555 -> 10.1.1.2:80).
func TestFilterAttributes(t *testing.T) {
	dir := t.TempDir()
	tcp := &Entry{Info: &httpfilter.RequestInfo{Flags: httpfilter.FlagUF, Cluster: "outbound|5432||db"},
		Conn: &httpfilter.Conn{RemoteAddr: netip.MustParseAddrPort("10.1.1.1:5555"), LocalAddr: netip.MustParseAddrPort("10.1.1.2:5432")}}
	mtls := testEntry()
	mtls.Conn = &httpfilter.Conn{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{}}}, ServerName: "outbound_.80_._.web"}
	cases := []struct {
		expr  string
		entry *Entry
		want  bool
	}{
		{"response.code >= 400", testEntry(), true},
		{"response.code >= 500 && response.code < 503", testEntry(), false},
		{"response.code_details == 'upstream connect error: refused'", testEntry(), true},
		{"response.flags == 32 + 32768", testEntry(), true}, // UF | URX, Envoy's bits
		{"response.size == 11", testEntry(), true},
		{"response.headers['x-envoy-upstream-service-time'] == '4'", testEntry(), true},
		{"request.method == 'GET' && request.host == 'web:8080'", testEntry(), true},
		{"request.path == '/a%20b?x=1' && request.url_path == '/a%20b' && request.query == 'x=1'", testEntry(), true},
		{"request.headers['x-envoy-original-path'] == '/orig'", testEntry(), true},
		{"request.headers[':method'] == 'GET'", testEntry(), true},
		{"request.useragent.startsWith('uuu')", testEntry(), true},
		{"has(request.referer)", testEntry(), false},
		{"request.protocol == 'HTTP/1.1' && request.scheme == 'http'", testEntry(), true},
		{"source.address == '10.1.1.1:5555' && source.port == 5555", testEntry(), true},
		{"destination.address == '10.1.1.2:80' && destination.port == 80", testEntry(), true},
		{"upstream.address == '10.0.0.1:80' && xds.cluster_name == 'outbound|80||web' && xds.route_name == 'default'", testEntry(), true},
		{"connection.mtls", testEntry(), false},
		{"connection.mtls && connection.requested_server_name == 'outbound_.80_._.web'", mtls, true},
		// TCP: no request or response code; an error does not log.
		{"response.code >= 400", tcp, false},
		{"xds.cluster_name == 'outbound|5432||db' && response.flags != 0", tcp, true},
		{"!has(request.method)", tcp, true},
	}
	for _, c := range cases {
		ls, err := Compile([]*accesslogv3.AccessLog{celLog(t, dir+"/a", c.expr, nil)})
		if err != nil {
			t.Fatalf("%s: %v", c.expr, err)
		}
		if got := ls[0].filter.match(c.entry); got != c.want {
			t.Errorf("%s: %v, want %v", c.expr, got, c.want)
		}
	}
}

func TestFilterNACK(t *testing.T) {
	dir := t.TempDir()
	withConfig := celLog(t, dir+"/a", "true", nil)
	ef := &celv3.ExpressionFilter{Expression: "true", CelConfig: &corev3.CelExpressionConfig{EnableStringConversion: true}}
	typed, _ := anypb.New(ef)
	withConfig.Filter.GetExtensionFilter().ConfigType = &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: typed}
	other := celLog(t, dir+"/a", "true", nil)
	notCEL, _ := anypb.New(&filev3.FileAccessLog{Path: "x"})
	other.Filter.GetExtensionFilter().ConfigType = &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: notCEL}
	for name, c := range map[string]struct {
		al   *accesslogv3.AccessLog
		want string
	}{
		"bad CEL":                 {celLog(t, dir+"/a", "response.code >", nil), "invalid CEL"},
		"unknown attribute":       {celLog(t, dir+"/a", "upstream.foo == 'x'", nil), "upstream.foo"},
		"cel_config":              {withConfig, "cel_config: not supported"},
		"not an ExpressionFilter": {other, "only type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter"},
	} {
		_, err := Compile([]*accesslogv3.AccessLog{c.al})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

// TestFilterLogs: only the entries the expression accepts reach the file.
func TestFilterLogs(t *testing.T) {
	path := t.TempDir() + "/f.log"
	ls, err := Compile([]*accesslogv3.AccessLog{celLog(t, path, "response.code >= 400", nil)})
	if err != nil {
		t.Fatal(err)
	}
	ok := testEntry()
	ok.Info.Status = 200
	ok.Req.URL.Path, ok.Req.URL.RawPath = "/fine", ""
	ls.Log(ok)
	ls.Log(testEntry())
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if len(data) > 0 {
			if string(data) != "503 /a%20b?x=1\n" {
				t.Fatalf("log = %q", data)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing logged")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkLogFiltered: a filtered-out request costs one CEL evaluation.
func BenchmarkLogFiltered(b *testing.B) {
	ls, err := Compile([]*accesslogv3.AccessLog{celLog(b, b.TempDir()+"/a", "response.code >= 400", nil)})
	if err != nil {
		b.Fatal(err)
	}
	e := testEntry()
	e.Info.Status = 200
	b.ReportAllocs()
	for b.Loop() {
		ls.Log(e)
	}
}

// A request the filter drops costs no allocation once the pools are warm.
func TestFilterAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	ls, err := Compile([]*accesslogv3.AccessLog{celLog(t, t.TempDir()+"/a", "response.code >= 400 && request.method == 'GET'", nil)})
	if err != nil {
		t.Fatal(err)
	}
	e := testEntry()
	e.Info.Status = 200
	if n := testing.AllocsPerRun(100, func() { ls.Log(e) }); n > 0 {
		t.Errorf("%v allocations per filtered-out entry", n)
	}
}

// TestFlagAndFilters: the response flag filter passes an entry with one
// of its flags (any flag when it lists none), and an and_filter of it and
// a CEL filter (Istio's listener access log with a Telemetry filter)
// passes what both pass; a flag the proxy never sets is refused.
func TestFlagAndFilters(t *testing.T) {
	nr := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR"}}}}
	anyFlag := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{}}}
	cel := celLog(t, t.TempDir()+"/a", "connection.requested_server_name == 'x'", nil)
	and := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
		AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{nr, cel.Filter}}}}
	entry := func(f httpfilter.Flags, sni string) *Entry {
		return &Entry{Info: &httpfilter.RequestInfo{Flags: f}, Conn: &httpfilter.Conn{ServerName: sni}}
	}
	for _, c := range []struct {
		name   string
		filter *accesslogv3.AccessLogFilter
		e      *Entry
		want   bool
	}{
		{"NR with NR", nr, entry(httpfilter.FlagNR, ""), true},
		{"NR with UF,NR", nr, entry(httpfilter.FlagUF|httpfilter.FlagNR, ""), true},
		{"NR with UF", nr, entry(httpfilter.FlagUF, ""), false},
		{"NR with none", nr, entry(0, ""), false},
		{"any with UF", anyFlag, entry(httpfilter.FlagUF, ""), true},
		{"any with none", anyFlag, entry(0, ""), false},
		{"and: both", and, entry(httpfilter.FlagNR, "x"), true},
		{"and: NR only", and, entry(httpfilter.FlagNR, "y"), false},
		{"and: CEL only", and, entry(0, "x"), false},
	} {
		f, err := compileFilter(c.filter)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := f.match(c.e); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	bad := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: []string{"NR", "UAEX2"}}}}
	badAnd := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{
		AndFilter: &accesslogv3.AndFilter{Filters: []*accesslogv3.AccessLogFilter{nr, bad}}}}
	if _, err := compileFilter(badAnd); err == nil || !strings.Contains(err.Error(), `and_filter.filters[1]: response_flag_filter: flag "UAEX2"`) {
		t.Errorf("unknown flag: %v", err)
	}
	or := &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{}}}
	if _, err := compileFilter(or); err == nil || !strings.Contains(err.Error(), "response_flag_filter and and_filter") {
		t.Errorf("or_filter: %v", err)
	}
}
