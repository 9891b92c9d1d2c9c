package inspect

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"sigs.k8s.io/yaml"
)

// Config kinds of `sluice proxy-config`.
const (
	KindListeners = "listeners"
	KindRoutes    = "routes"
	KindClusters  = "clusters"
	KindEndpoints = "endpoints"
	KindSecrets   = "secrets"
	KindAll       = "all"
)

// ProxyConfigOptions say what `sluice proxy-config` prints.
type ProxyConfigOptions struct {
	Client *Client
	// Kind is one of the Kind constants.
	Kind string
	// Proxy is a node ID, name.namespace, or a name only one proxy has.
	Proxy string
	// Output is "table" (or empty), "json" or "yaml".
	Output string
	Out    io.Writer
	Now    time.Time
}

// sections of `all`, in istioctl's order (clusters, listeners, routes,
// secrets... istioctl prints endpoints last).
var allKinds = []string{KindClusters, KindListeners, KindRoutes, KindSecrets, KindEndpoints}

// ProxyConfig prints one kind of a proxy's config, or all of them: the
// xDS the control plane published to it (listeners, routes, clusters),
// and from the proxy's admin its hosts (endpoints) and certificates
// (secrets).
func ProxyConfig(o ProxyConfigOptions) error {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	switch o.Output {
	case "", "table", "json", "yaml":
	default:
		return fmt.Errorf("output format %q not supported (table, json, yaml)", o.Output)
	}
	kinds := []string{o.Kind}
	switch o.Kind {
	case KindListeners, KindRoutes, KindClusters, KindEndpoints, KindSecrets:
	case KindAll:
		kinds = allKinds
	default:
		return fmt.Errorf("unknown config kind %q (listeners, routes, clusters, endpoints, secrets, all)", o.Kind)
	}
	list, err := o.Client.Proxies()
	if err != nil {
		return err
	}
	p, err := Resolve(list, o.Proxy)
	if err != nil {
		return err
	}
	dump, err := o.Client.ConfigDump(p.ID)
	if err != nil {
		return err
	}
	cfg, err := DecodeConfig(dump)
	if err != nil {
		return fmt.Errorf("proxy %s: %w", p.ID, err)
	}
	structured := map[string]any{}
	for i, kind := range kinds {
		v, err := section(o, cfg, p.AdminAddress, kind)
		if err != nil {
			return fmt.Errorf("proxy %s: %s: %w", p.ID, kind, err)
		}
		if o.Output == "json" || o.Output == "yaml" {
			structured[kind] = v
			continue
		}
		if i > 0 {
			fmt.Fprintln(o.Out)
		}
		if err := writeTable(o.Out, kind, cfg, v); err != nil {
			return err
		}
	}
	if o.Output != "json" && o.Output != "yaml" {
		return nil
	}
	var v any = structured
	if o.Kind != KindAll {
		v = structured[o.Kind]
	}
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	if o.Output == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
	} else {
		b = append(b, '\n')
	}
	_, err = o.Out.Write(b)
	return err
}

// section fetches what the proxy's admin holds (endpoints, secrets) or
// the raw published resources of a kind (for -o json|yaml).
func section(o ProxyConfigOptions, cfg *Config, admin, kind string) (any, error) {
	needsAdmin := kind == KindEndpoints || kind == KindSecrets
	if needsAdmin && admin == "" {
		return nil, fmt.Errorf("the proxy announces no admin address")
	}
	raw := func(t string) []json.RawMessage {
		if r := cfg.Raw[t]; r != nil {
			return r
		}
		return []json.RawMessage{}
	}
	switch kind {
	case KindEndpoints:
		return ProxyEndpoints(o.Client.httpClient(), admin, cfg.Endpoints)
	case KindSecrets:
		return ProxySecrets(o.Client.httpClient(), admin, o.Now)
	case KindListeners:
		return raw(resourcev3.ListenerType), nil
	case KindRoutes:
		return raw(resourcev3.RouteType), nil
	}
	return raw(resourcev3.ClusterType), nil
}

func writeTable(w io.Writer, kind string, cfg *Config, v any) error {
	switch kind {
	case KindListeners:
		return WriteListeners(w, cfg.Listeners)
	case KindRoutes:
		return WriteRoutes(w, cfg.Routes)
	case KindClusters:
		return WriteClusters(w, cfg.Clusters)
	case KindEndpoints:
		return WriteEndpoints(w, v.([]Endpoint))
	}
	return WriteSecrets(w, v.([]Secret))
}
