// Package inspect reads a running mesh for the istioctl-like commands
// (`sluice proxy-status`, `sluice proxy-config`): the control plane's
// proxy list and sync state (/debug/syncz), a proxy's config
// (/debug/config_dump?proxy=) and its certificates (the proxy admin's
// /certs), and prints them as istioctl does.
package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-mesh/sluice/pkg/xdsserver"
)

// Client reads a control plane's status endpoint (its --http-address).
type Client struct {
	// Address is the control plane's --http-address (host:port).
	Address string
	HTTP    *http.Client
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// get GETs url and decodes its JSON answer into v.
func (c *Client) get(u string, v any) error {
	resp, err := c.httpClient().Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

// Proxies are the connected proxies with their per-type sync state.
func (c *Client) Proxies() ([]xdsserver.ProxyStatus, error) {
	var list []xdsserver.ProxyStatus
	if err := c.get("http://"+c.Address+"/debug/syncz", &list); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return list, nil
}

// Resolve finds a connected proxy by its node ID, or by name.namespace
// (or name alone when only one proxy has it), as istioctl names pods.
func Resolve(list []xdsserver.ProxyStatus, name string) (xdsserver.ProxyStatus, error) {
	var found []xdsserver.ProxyStatus
	for _, p := range list {
		switch {
		case p.ID == name:
			return p, nil
		case p.Name+"."+p.Namespace == name, p.Name == name:
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return xdsserver.ProxyStatus{}, fmt.Errorf("proxy %q is not connected to the control plane (see sluice proxy-status)", name)
	}
	var names []string
	for _, p := range found {
		names = append(names, p.Name+"."+p.Namespace)
	}
	return xdsserver.ProxyStatus{}, fmt.Errorf("proxy %q is ambiguous: %s; name it as name.namespace", name, strings.Join(names, ", "))
}

// ConfigDump is the xDS last published for a proxy, per type URL.
func (c *Client) ConfigDump(nodeID string) (map[string]TypeDump, error) {
	out := map[string]TypeDump{}
	if err := c.get("http://"+c.Address+"/debug/config_dump?proxy="+url.QueryEscape(nodeID), &out); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return out, nil
}

// TypeDump is one type's resources in a config dump.
type TypeDump struct {
	Version   string            `json:"version"`
	Resources []json.RawMessage `json:"resources"`
}
