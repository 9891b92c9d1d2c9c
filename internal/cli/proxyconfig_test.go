package cli

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-mesh/sluice/internal/hostport"
	"github.com/sluice-mesh/sluice/pkg/ca"
)

// hasRow reports whether some line of out matches re.
func hasRow(t *testing.T, out, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range strings.Split(out, "\n") {
		if rx.MatchString(strings.TrimRight(l, " ")) {
			return
		}
	}
	t.Errorf("no row matches %s in:\n%s", re, out)
}

// `sluice proxy-config` prints a real sidecar's config as istioctl's
// tables: the published listeners, routes and clusters, and from the
// proxy's admin its endpoints and certificates; -o json the resources.
func TestProxyConfig(t *testing.T) {
	m := startInspectMesh(t)
	pc := func(args ...string) string {
		t.Helper()
		out, err := run(t, append([]string{"proxy-config", "--address", m.http}, args...)...)
		if err != nil {
			t.Fatalf("proxy-config %v: %v\n%s", args, err, out)
		}
		return out
	}
	_, outPort, _ := hostport.ParseAddr(m.sidecar.OutboundAddress)

	out := pc("listeners", "productpage.default")
	hasRow(t, out, `^ADDRESSES\s+PORT\s+MATCH\s+DESTINATION$`)
	hasRow(t, out, `^127\.0\.0\.1\s+`+itoa(outPort)+`\s+ALL\s+Route: outbound$`)

	out = pc("routes", "productpage.default")
	hasRow(t, out, `^NAME\s+VHOST NAME\s+DOMAINS\s+MATCH\s+VIRTUAL SERVICE$`)
	// The route names its VirtualService (name.namespace), from the
	// istio config metadata the generator sets and the proxy accepted.
	hasRow(t, out, `^outbound\s+reviews\.example\.com:80\s+reviews\.example\.com\s+/api\*\s+reviews\.default$`)

	out = pc("clusters", m.sidecar.NodeID())
	hasRow(t, out, `^SERVICE FQDN\s+PORT\s+SUBSET\s+DIRECTION\s+TYPE\s+DESTINATION RULE$`)
	hasRow(t, out, `^reviews\.example\.com\s+80\s+v1\s+outbound\s+EDS\s+reviews\.default$`)
	hasRow(t, out, `^reviews\.example\.com\s+80\s+-\s+outbound\s+EDS\s+reviews\.default$`)
	hasRow(t, out, `^PassthroughCluster\s+-\s+-\s+-\s+ORIGINAL_DST$`)

	out = pc("endpoints", "productpage")
	hasRow(t, out, `^ENDPOINT\s+STATUS\s+OUTLIER CHECK\s+CLUSTER$`)
	hasRow(t, out, `^127\.0\.0\.9:80\s+HEALTHY\s+OK\s+outbound\|80\|v1\|reviews\.example\.com$`)
	// Nothing listens at the endpoint: one request through the sidecar
	// fails to connect, and outlier detection (consecutive5xxErrors 1)
	// ejects the host from the v1 subset's cluster only.
	req, _ := http.NewRequest("GET", "http://"+m.sidecar.OutboundAddress+"/api", nil)
	req.Host = "reviews.example.com"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("request to a dead endpoint: %s", resp.Status)
	}
	out = pc("endpoints", "productpage")
	hasRow(t, out, `^127\.0\.0\.9:80\s+HEALTHY\s+FAILED\s+outbound\|80\|v1\|reviews\.example\.com$`)
	hasRow(t, out, `^127\.0\.0\.9:80\s+HEALTHY\s+OK\s+outbound\|80\|\|reviews\.example\.com$`)

	// The trust bundle's root is the control plane's.
	rootPEM, err := os.ReadFile(filepath.Join(m.state, ca.FileRootCert))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(rootPEM)
	root, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	out = pc("secrets", "productpage.default")
	hasRow(t, out, `^RESOURCE NAME\s+TYPE\s+STATUS\s+VALID CERT\s+SERIAL NUMBER\s+NOT AFTER\s+NOT BEFORE$`)
	hasRow(t, out, `^default\s+Cert Chain\s+ACTIVE\s+true\s+[0-9a-f]+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+\d{4}-`)
	hasRow(t, out, `^ROOTCA\s+CA\s+ACTIVE\s+true\s+`+root.SerialNumber.Text(16)+`\s+`+root.NotAfter.UTC().Format("2006-01-02T15:04:05Z")+`\s+`)

	all := pc("all", "productpage.default")
	for _, h := range []string{"SERVICE FQDN", "ADDRESSES", "VHOST NAME", "RESOURCE NAME", "OUTLIER CHECK"} {
		if !strings.Contains(all, h) {
			t.Errorf("all lacks the %s table:\n%s", h, all)
		}
	}

	var clusters []struct {
		Name string `json:"name"`
	}
	out = pc("clusters", "productpage.default", "-o", "json")
	if err := json.Unmarshal([]byte(out), &clusters); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	found := false
	for _, c := range clusters {
		found = found || c.Name == "outbound|80|v1|reviews.example.com"
	}
	if !found {
		t.Errorf("-o json lacks the v1 cluster: %s", out)
	}
	if out = pc("routes", "productpage.default", "-o", "yaml"); !strings.Contains(out, "prefix: /api") {
		t.Errorf("-o yaml routes: %s", out)
	}

	if out, err := run(t, "proxy-config", "clusters", "nosuch.default", "--address", m.http); err == nil ||
		!strings.Contains(err.Error(), `proxy "nosuch.default" is not connected`) {
		t.Errorf("unknown proxy: %v\n%s", err, out)
	}
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
