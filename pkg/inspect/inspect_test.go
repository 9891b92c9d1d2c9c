package inspect

import (
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-mesh/sluice/pkg/xdsgen"
	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// istioctl's own cases (istio/istio
// istioctl/pkg/writer/envoy/configdump/route_test.go TestDescribeRouteDomains).
func TestDescribeRouteDomains(t *testing.T) {
	cases := []struct {
		domains []string
		want    string
	}{
		{[]string{}, ""},
		{[]string{"example.com"}, "example.com"},
		{[]string{"example.com", "example.com:8080"}, "example.com"},
		{[]string{"example.com", "example.com:8080", "1.2.3.4", "1.2.3.4:8080"}, "example.com, 1.2.3.4"},
		{[]string{"example.com", "example.com:8080", "[fd00:10:96::7fc7]", "[fd00:10:96::7fc7]:8080"}, "example.com, [fd00:10:96::7fc7]"},
		{[]string{"example.com", "example.com:8080", "www.example.com", "www.example.com:8080", "[fd00:10:96::7fc7]", "[fd00:10:96::7fc7]:8080"},
			"example.com, www.example.com + 1 more..."},
		{[]string{"r", "r.svc", "r.svc.cluster.local", "r:80"}, "r"},
	}
	for _, c := range cases {
		if got := describeRouteDomains(c.domains); got != c.want {
			t.Errorf("%v: got %q, want %q", c.domains, got, c.want)
		}
	}
}

func TestChainMatch(t *testing.T) {
	cases := []struct {
		m    *listener.FilterChainMatch
		want string
	}{
		{nil, "ALL"},
		{&listener.FilterChainMatch{TransportProtocol: "tls", ApplicationProtocols: []string{"istio-peer-exchange", "istio"}}, "Trans: tls; App: TCP TLS"},
		{&listener.FilterChainMatch{ApplicationProtocols: []string{"http/1.0", "http/1.1", "h2c"}, DestinationPort: wrapperspb.UInt32(9080)}, "App: HTTP; Addr: *:9080"},
		{&listener.FilterChainMatch{ServerNames: []string{"a.example.com"}, ApplicationProtocols: []string{"h2"},
			PrefixRanges: []*core.CidrRange{{AddressPrefix: "10.0.0.0", PrefixLen: wrapperspb.UInt32(8)}}}, "SNI: a.example.com; App: h2; Addr: 10.0.0.0/8"},
	}
	for _, c := range cases {
		if got := chainMatch(c.m); got != c.want {
			t.Errorf("%v: got %q, want %q", c.m, got, c.want)
		}
	}
}

// k8s.io/apimachinery's HumanDuration, which istioctl prints ages with.
func TestHumanDuration(t *testing.T) {
	cases := map[time.Duration]string{
		-2 * time.Second: "<invalid>", -time.Second / 2: "0s", 0: "0s", 119 * time.Second: "119s",
		2 * time.Minute: "2m", 150 * time.Second: "2m30s", 10 * time.Minute: "10m", 179 * time.Minute: "179m",
		3 * time.Hour: "3h", 3*time.Hour + 5*time.Minute: "3h5m", 8 * time.Hour: "8h", 47 * time.Hour: "47h",
		48 * time.Hour: "2d", 50 * time.Hour: "2d2h", 8 * 24 * time.Hour: "8d",
	}
	for d, want := range cases {
		if got := humanDuration(d); got != want {
			t.Errorf("%v: got %q, want %q", d, got, want)
		}
	}
}

func TestTypeSync(t *testing.T) {
	at := time.Now()
	cases := []struct {
		ts   xdsserver.TypeStatus
		want string
	}{
		{xdsserver.TypeStatus{}, NotSent},
		{xdsserver.TypeStatus{SentVersion: "b", AckedVersion: "a"}, Stale},
		{xdsserver.TypeStatus{SentVersion: "b", AckedVersion: "b", AckTime: at}, Synced},
		{xdsserver.TypeStatus{SentVersion: "b", AckedVersion: "a", Nack: "bad", NackVersion: "b", NackTime: at}, Nack},
		// A NACK of an older version, then a newer one sent: not answered yet.
		{xdsserver.TypeStatus{SentVersion: "c", AckedVersion: "a", Nack: "bad", NackVersion: "b"}, Stale},
	}
	for _, c := range cases {
		got := typeSync("CDS", c.ts)
		if got.Status != c.want {
			t.Errorf("%+v: %s, want %s", c.ts, got.Status, c.want)
		}
		if (got.Status == Synced || got.Status == Nack) && !got.Since.Equal(at) {
			t.Errorf("%+v: since %v", c.ts, got.Since)
		}
	}
}

// A proxy on VHDS: a rejected virtual host update shows in its RDS column.
func TestProxyStatusFoldsVirtualHosts(t *testing.T) {
	synced := xdsserver.TypeStatus{SentVersion: "a", AckedVersion: "a"}
	rows := StatusRows([]xdsserver.ProxyStatus{{Name: "web", Namespace: "default", Types: []xdsserver.TypeStatus{
		{TypeURL: resourcev3.RouteType, SentVersion: "r", AckedVersion: "r"},
		{TypeURL: resourcev3.VirtualHostType, SentVersion: "v2", AckedVersion: "v1", Nack: "bad vhost", NackVersion: "v2"},
		func() xdsserver.TypeStatus { s := synced; s.TypeURL = resourcev3.ClusterType; return s }(),
	}}}, "")
	rds := rows[0].Types[3]
	if rds.Type != "RDS" || rds.Status != Nack || rds.Nack != "virtual hosts (VHDS): bad vhost" {
		t.Fatalf("RDS column: %+v", rds)
	}
	if withVirtualHosts(TypeSync{Type: "RDS", Status: Stale}, synced).Status != Stale {
		t.Fatal("synced virtual hosts hid an unanswered route configuration")
	}
}

// A ztunnel's row: its Envoy types IGNORED, the workload API in the WDS
// and WADS columns the table gets when a ztunnel is listed (IGNORED for a
// sidecar).
func TestProxyStatusZtunnel(t *testing.T) {
	rows := StatusRows([]xdsserver.ProxyStatus{
		{Name: "ztunnel-abc", Namespace: "istio-system", Type: "ztunnel", Types: []xdsserver.TypeStatus{
			{TypeURL: xdsgen.AddressType, SentVersion: "a", AckedVersion: "a"},
			{TypeURL: xdsgen.AuthorizationType, SentVersion: "b"},
		}},
		{Name: "web", Namespace: "default", Type: "sidecar", Types: []xdsserver.TypeStatus{
			{TypeURL: resourcev3.ClusterType, SentVersion: "c", AckedVersion: "c"},
		}},
	}, "istiod")
	var b strings.Builder
	if err := WriteStatusTable(&b, rows, time.Now()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := [][]string{
		{"NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "WDS", "WADS", "ISTIOD", "VERSION"},
		{"web.default", "-", "SYNCED", "NOT", "SENT", "NOT", "SENT", "NOT", "SENT", "IGNORED", "IGNORED", "istiod", "0"},
		{"ztunnel-abc.istio-system", "-", "IGNORED", "IGNORED", "IGNORED", "IGNORED", "SYNCED", "STALE", "istiod", "0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("table:\n%s", b.String())
	}
	for i, l := range lines {
		if got := strings.Fields(l); !slices.Equal(got, want[i]) {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
	z := rows[1]
	if z.Types[4].Type != "WDS" || z.Types[4].Status != Synced || z.Types[5].Type != "WADS" || z.Types[5].Status != Stale {
		t.Errorf("ztunnel row: %+v", z.Types)
	}
}
