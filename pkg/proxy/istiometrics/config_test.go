package istiometrics

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	stats "istio.io/api/envoy/extensions/stats"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/xdsfields"
)

func mustCompile(t testing.TB, pc *stats.PluginConfig) *Config {
	t.Helper()
	c, err := Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// familyLabels is the label names a family exports (from its one series).
func familyLabels(t *testing.T, m *Metrics, name string) map[string]string {
	t.Helper()
	got, _ := labelsOf(t, m, name, nil)
	return got
}

func hasFamily(t *testing.T, m *Metrics, name string) bool {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return true
		}
	}
	return false
}

// TestOverrides: a dropped metric is not recorded, a removed tag is
// gone, dimensions are set from headers, peers and literals, standard
// labels can be overridden, and other metrics keep their labels.
func TestOverrides(t *testing.T) {
	m := newTest(t, "sleep", map[string]string{"app": "sleep"})
	cfg := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "request_duration_milliseconds", Drop: true},
		{TagsToRemove: []string{"response_flags", "source_principal"}},
		{Name: "requests_total", Dimensions: map[string]string{
			"user": "request.headers['x-user']", "mesh": "'prod'", "request_protocol": "request.method",
			"peer_app": "upstream_peer.app", "peer_label": "upstream_peer.labels['app'].value",
		}},
	}})
	m.Configure([]*Config{cfg})
	hdr := http.Header{}
	newTest(t, "web", map[string]string{"app": "web"}).SetPeerHeaders(hdr)
	req := reqTo("web:80")
	req.Header.Set("X-User", "alice")
	r := &HTTPRequest{Config: cfg, Request: req, Info: &httpfilter.RequestInfo{Status: 200, Start: time.Now(),
		Cluster: "outbound|80||web.default.svc.cluster.local", PeerMetadata: hdr[HeaderPeerMetadata][0]}}
	m.RecordHTTP(r)
	m.RecordHTTP(r)
	got, mt := labelsOf(t, m, "istio_requests_total", nil)
	if mt.GetCounter().GetValue() != 2 {
		t.Errorf("requests_total = %v, want 2", mt.GetCounter().GetValue())
	}
	for k, v := range map[string]string{"user": "alice", "mesh": "prod", "request_protocol": "GET", "peer_app": "web", "peer_label": "web",
		"destination_workload": "web", "destination_service": "web.default.svc.cluster.local"} {
		if got[k] != v {
			t.Errorf("requests_total %s = %q, want %q", k, got[k], v)
		}
	}
	for _, gone := range []string{"response_flags", "source_principal"} {
		if _, ok := got[gone]; ok {
			t.Errorf("requests_total still has %s", gone)
		}
	}
	if hasFamily(t, m, "istio_request_duration_milliseconds") {
		t.Error("dropped request_duration_milliseconds is exported")
	}
	rb := familyLabels(t, m, "istio_request_bytes")
	if _, ok := rb["user"]; ok || rb["request_protocol"] != "http" {
		t.Errorf("request_bytes has another metric's dimensions: %v", rb)
	}
	if _, ok := rb["response_flags"]; ok {
		t.Error("request_bytes keeps response_flags removed for all metrics")
	}
	// Another user is another series; a missing header is "unknown".
	req.Header.Set("X-User", "bob")
	m.RecordHTTP(r)
	req.Header.Del("X-User")
	m.RecordHTTP(r)
	for _, u := range []string{"alice", "bob", "unknown"} {
		labelsOf(t, m, "istio_requests_total", map[string]string{"user": u})
	}
}

// TestSchemaUnion: two chains' configs share the families: a label one
// removes stays for the other (empty in the first's series), a dimension
// one adds is empty in the other's.
func TestSchemaUnion(t *testing.T) {
	m := newTest(t, "web", nil)
	client := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"method": "request.method"}}}})
	server := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", TagsToRemove: []string{"source_app"}}}})
	m.Configure([]*Config{client, server})
	info := &httpfilter.RequestInfo{Status: 200}
	m.RecordHTTP(&HTTPRequest{Config: client, Request: reqTo("x"), Info: info})
	m.RecordHTTP(&HTTPRequest{Config: server, Request: reqTo("web"), Info: info, Inbound: true})
	out, _ := labelsOf(t, m, "istio_requests_total", map[string]string{"reporter": "source"})
	if out["method"] != "GET" || out["source_app"] != "unknown" {
		t.Errorf("client series: %v", out)
	}
	in, _ := labelsOf(t, m, "istio_requests_total", map[string]string{"reporter": "destination"})
	// client_golang exports an empty value, which Prometheus reads as no label.
	if in["method"] != "" {
		t.Errorf("server series has the client's dimension: %v", in)
	}
	if in["source_app"] != "" {
		t.Errorf("server series keeps source_app it removes: %v", in)
	}
}

// TestReconfigure: a config change that keeps the label names keeps the
// counts; one that changes them rebuilds the family (counts restart).
func TestReconfigure(t *testing.T) {
	m := newTest(t, "web", nil)
	info := &httpfilter.RequestInfo{Status: 200}
	rec := func(c *Config) { m.RecordHTTP(&HTTPRequest{Config: c, Request: reqTo("web"), Info: info}) }
	rec(nil)
	m.Configure([]*Config{mustCompile(t, &stats.PluginConfig{})})
	rec(nil)
	if _, mt := labelsOf(t, m, "istio_requests_total", nil); mt.GetCounter().GetValue() != 2 {
		t.Errorf("same names: count %v, want 2", mt.GetCounter().GetValue())
	}
	withDim := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"host": "request.host"}}}})
	m.Configure([]*Config{withDim})
	rec(withDim)
	got, mt := labelsOf(t, m, "istio_requests_total", nil)
	if mt.GetCounter().GetValue() != 1 || got["host"] != "web" {
		t.Errorf("new names: %v %v", mt.GetCounter().GetValue(), got)
	}
}

// TestCompileRefuses: what the proxy cannot honour is an error naming it.
func TestCompileRefuses(t *testing.T) {
	for want, pc := range map[string]*stats.PluginConfig{
		"definitions":       {Definitions: []*stats.MetricDefinition{{Name: "custom", Value: "1"}}},
		"match":             {Metrics: []*stats.MetricConfig{{Match: "response.code == 200"}}},
		`name "my_metric"`:  {Metrics: []*stats.MetricConfig{{Name: "my_metric"}}},
		`dimensions["x"]`:   {Metrics: []*stats.MetricConfig{{Dimensions: map[string]string{"x": "request.size"}}}},
		"request.size":      {Metrics: []*stats.MetricConfig{{Dimensions: map[string]string{"x": "request.size"}}}},
		`dimensions["a-b"]`: {Metrics: []*stats.MetricConfig{{Dimensions: map[string]string{"a-b": "'v'"}}}},
		"reporter":          {Reporter: stats.Reporter_SERVER_GATEWAY},
		"stat_prefix":       {StatPrefix: "mine_"},
		"rotation_interval": {RotationInterval: durationpb.New(time.Minute)},
		"metrics[1]":        {Metrics: []*stats.MetricConfig{{}, {Match: "x"}}},
	} {
		_, err := Compile(pc)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
}

// TestTCPOverrides: TCP metrics take the config's removals and drops;
// request attributes are unknown on a connection.
func TestTCPOverrides(t *testing.T) {
	m := newTest(t, "web", nil)
	cfg := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "tcp_connections_closed_total", Drop: true},
		{Dimensions: map[string]string{"host": "request.host", "port": "destination.port"}},
	}})
	m.Configure([]*Config{cfg})
	ctr := m.OpenTCP(TCPConn{Config: cfg, Cluster: "outbound|9000||db.default.svc.cluster.local",
		Conn: &httpfilter.Conn{}})
	ctr.Closed()
	got, _ := labelsOf(t, m, "istio_tcp_connections_opened_total", nil)
	if got["host"] != "unknown" || got["destination_service"] != "db.default.svc.cluster.local" {
		t.Errorf("tcp labels: %v", got)
	}
	if hasFamily(t, m, "istio_tcp_connections_closed_total") {
		t.Error("dropped tcp_connections_closed_total exported")
	}
}

// TestRecordHTTPAllocsOverrides reports what a request costs with a
// header dimension (logged; the standard path is TestRecordHTTPAllocs).
func TestRecordHTTPAllocsOverrides(t *testing.T) {
	m := newTest(t, "sleep", nil)
	cfg := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"user": "request.headers['x-user']"}},
		{TagsToRemove: []string{"response_flags"}},
	}})
	m.Configure([]*Config{cfg})
	req := reqTo("web")
	req.Header.Set("X-User", "alice")
	r := &HTTPRequest{Config: cfg, Request: req, Info: &httpfilter.RequestInfo{Status: 200,
		Cluster: "outbound|80||web.default.svc.cluster.local"}}
	m.RecordHTTP(r)
	n := testing.AllocsPerRun(100, func() { m.RecordHTTP(r) })
	t.Logf("RecordHTTP with a header dimension: %v allocations per request", n)
	if n > 1 {
		t.Errorf("RecordHTTP with a header dimension allocates %v times", n)
	}
}

func BenchmarkRecordHTTPOverrides(b *testing.B) {
	m := newTest(b, "sleep", nil)
	cfg := mustCompile(b, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"user": "request.headers['x-user']", "m": "'a' + request.method"}},
	}})
	m.Configure([]*Config{cfg})
	req := reqTo("web")
	req.Header.Set("X-User", "alice")
	r := &HTTPRequest{Config: cfg, Request: req, Info: &httpfilter.RequestInfo{Status: 200,
		Cluster: "outbound|80||web.default.svc.cluster.local"}}
	b.ReportAllocs()
	for range b.N {
		m.RecordHTTP(r)
	}
}

// TestPluginConfigFields: every PluginConfig field is either taken (the
// config compiles with it set) or refused naming it; the table is the
// proto, so a field a newer istio.io/api adds is covered.
func TestPluginConfigFields(t *testing.T) {
	// rotation_interval 0 is "no rotation", what the proxy does.
	refused := map[string]bool{"definitions": true, "reporter": true,
		"graceful_deletion_interval": true, "stat_prefix": true}
	fields := (&stats.PluginConfig{}).ProtoReflect().Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		pc := &stats.PluginConfig{}
		xdsfields.SetSomething(pc.ProtoReflect(), fd)
		_, err := Compile(pc)
		switch {
		case refused[string(fd.Name())] && (err == nil || !strings.Contains(err.Error(), string(fd.Name()))):
			t.Errorf("%s set: err = %v, want a refusal naming it", fd.Name(), err)
		case !refused[string(fd.Name())] && err != nil:
			t.Errorf("%s set: %v", fd.Name(), err)
		}
	}
}

// TestConfigureWhileRecording: requests recorded while pushes change the
// label schema are counted under the families in force, without a race
// (run with -race) or a panic.
func TestConfigureWhileRecording(t *testing.T) {
	m := newTest(t, "web", nil)
	a := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{
		{Name: "requests_total", Dimensions: map[string]string{"host": "request.host"}}}})
	b := mustCompile(t, &stats.PluginConfig{Metrics: []*stats.MetricConfig{{TagsToRemove: []string{"source_app"}}}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if i%2 == 0 {
				m.Configure([]*Config{a})
			} else {
				m.Configure([]*Config{b})
			}
		}
	}()
	for i := 0; ; i++ {
		c := a
		if i%3 == 0 {
			c = b
		}
		m.RecordHTTP(&HTTPRequest{Config: c, Request: reqTo("web"), Info: &httpfilter.RequestInfo{Status: 200}})
		m.OpenTCP(TCPConn{Config: c, Cluster: "outbound|9000||db.default.svc.cluster.local"}).Closed()
		select {
		case <-done:
			if _, err := m.Registry().Gather(); err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
	}
}
