package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ControlStatus is the part of "sluice control"'s /debug/status that tests
// read.
type ControlStatus struct {
	Ready        bool     `json:"ready"`
	ConfigDir    string   `json:"config_dir"`
	Resources    int      `json:"resources"`
	ConfigErrors []string `json:"config_errors"`
	// Conflicts are config parts left out per proxy ID.
	Conflicts map[string][]string `json:"conflicts"`
	LastPush  PushStatus          `json:"last_push"`
	// ConfigRead is when the control plane last read its folder, once what
	// it found was pushed.
	ConfigRead time.Time     `json:"config_read"`
	Proxies    []ProxyStatus `json:"proxies"`
}

// PushStatus describes the control plane's most recent push.
type PushStatus struct {
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Proxies int       `json:"proxies"`
	Reasons []string  `json:"reasons"`
}

// ProxyStatus is one connected proxy as the control plane sees it.
type ProxyStatus struct {
	ID        string            `json:"id"`
	Type      string            `json:"type"`
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	Types     []TypeStatus      `json:"types"`
}

// TypeStatus is what a proxy last said about one xDS resource type.
type TypeStatus struct {
	Type         string    `json:"type"`
	SentVersion  string    `json:"sent_version"`
	AckedVersion string    `json:"acked_version"`
	AckTime      time.Time `json:"ack_time"`
	Nack         string    `json:"nack"`
	NackVersion  string    `json:"nack_version"`
}

// Proxy returns the status of the proxy with this name and namespace.
func (s ControlStatus) Proxy(name, namespace string) (ProxyStatus, bool) {
	for _, p := range s.Proxies {
		if p.Name == name && p.Namespace == namespace {
			return p, true
		}
	}
	return ProxyStatus{}, false
}

// NACKs lists every NACK currently recorded, one line per proxy and type.
func (s ControlStatus) NACKs() []string {
	var out []string
	for _, p := range s.Proxies {
		for _, ts := range p.Types {
			if ts.Nack != "" {
				out = append(out, fmt.Sprintf("%s %s version %s: %s", p.ID, shortTypeName(ts.Type), ts.NackVersion, ts.Nack))
			}
		}
	}
	return out
}

// ErrorsMentioning returns the config errors that contain every one of the
// given substrings.
func (s ControlStatus) ErrorsMentioning(parts ...string) []string {
	var out []string
next:
	for _, e := range s.ConfigErrors {
		for _, p := range parts {
			if !strings.Contains(e, p) {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

func shortTypeName(typeURL string) string {
	if i := strings.LastIndex(typeURL, "."); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}

func getJSON(url string, v any) error {
	resp, err := probeClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d: %.300s", url, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: decode: %w; body %.300s", url, err, body)
	}
	return nil
}
