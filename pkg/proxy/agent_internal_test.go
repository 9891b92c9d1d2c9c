package proxy

import (
	"strings"
	"testing"
)

func TestParseAppProbers(t *testing.T) {
	got, err := parseAppProbers(`{"/app-health/a/readyz":{"httpGet":{"port":8080,"path":"/h"},"timeoutSeconds":3},"/app-lifecycle/a/prestopz":{"tcpSocket":{"port":81}}}`, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if p := got["/app-health/a/readyz"]; p == nil || p.target != "10.0.0.1:8080" || p.timeout.Seconds() != 3 || p.client == nil {
		t.Errorf("readyz compiled to %+v", p)
	}
	if p := got["/app-lifecycle/a/prestopz"]; p == nil || p.target != "10.0.0.1:81" || p.timeout.Seconds() != 1 {
		t.Errorf("prestopz compiled to %+v", p)
	}
	for js, want := range map[string]string{
		`{"/other":{"tcpSocket":{"port":1}}}`:                                   "not an /app-health/",
		`{"/app-health/a/livez":{}}`:                                            "exactly one",
		`{"/app-health/a/livez":{"tcpSocket":{"port":1},"httpGet":{"port":2}}}`: "exactly one",
		`{"/app-health/a/livez":{"tcpSocket":{"port":"http"}}}`:                 "want a port number",
		`{"/app-health/a/livez":{"grpc":{"port":70000}}}`:                       "want a port number",
		`not json`: "app probers",
	} {
		if _, err := parseAppProbers(js, "127.0.0.1"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", js, err, want)
		}
	}
}
