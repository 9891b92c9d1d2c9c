package main

import (
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
)

// Names and EDS names come from the wire as proto.Unmarshal would read
// them; a truncated message is an error, not a silent partial read.
func TestClusterEDSNameFromWire(t *testing.T) {
	for _, tc := range []struct {
		c         *cluster.Cluster
		name, eds string
	}{
		{&cluster.Cluster{Name: "a", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS}}, "a", "a"},
		{&cluster.Cluster{Name: "b", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{ServiceName: "svc-b"}}, "b", "svc-b"},
		{&cluster.Cluster{Name: "c", ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STRICT_DNS}}, "c", ""},
	} {
		b, err := proto.Marshal(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		name, eds, err := clusterEDSName(b)
		if err != nil || name != tc.name || eds != tc.eds {
			t.Errorf("%s: got %q, %q, %v; want %q, %q", tc.c.Name, name, eds, err, tc.name, tc.eds)
		}
		if _, _, err := clusterEDSName(b[:len(b)-1]); err == nil {
			t.Errorf("%s: truncated message accepted", tc.c.Name)
		}
	}
	if _, err := resourceName(nil); err == nil {
		t.Error("a resource without a name was accepted")
	}
}

func TestParsePoints(t *testing.T) {
	got, err := parsePoints("100x10x10, 5000x10x0")
	if err != nil || len(got) != 2 || got[0] != (point{100, 10, 10}) || got[1] != (point{5000, 10, 0}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"100x10", "0x1x1", "axbxc", "1x-1x1", ""} {
		if _, err := parsePoints(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p50, p99 := percentile(d, 0.5), percentile(d, 0.99); p50 != 50 || p99 != 99 {
		t.Errorf("p50 %v p99 %v", p50, p99)
	}
	if p := percentile(d[:1], 0.99); p != 1 {
		t.Errorf("one sample: %v", p)
	}
}
