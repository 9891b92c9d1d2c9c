package testenv

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// WorkloadOptions describe a workload for AddWorkload.
type WorkloadOptions struct {
	// Service is the name the echo backend reports (and, by default, the
	// app label).
	Service string
	// Namespace of the workload; default "default".
	Namespace string
	// Name is the pod name: the sidecar's --name, the echo's --pod and the
	// WorkloadEntry's name. Default "<service>-<version>", or the service.
	Name string
	// Labels of the workload. Nil means {app: Service}. A Version not
	// already in Labels is added as the "version" label.
	Labels map[string]string
	// Version the echo backend reports; default Labels["version"].
	Version string
	// PortName is the Service port name the WorkloadEntry maps to the
	// sidecar's inbound port; default "http".
	PortName string
	// PortNames are further Service port names mapped to the same inbound
	// port, for services with several ports.
	PortNames []string
	// TCPPrefix, when set, makes the backend a TCP line echo (Istio's
	// tcp-echo) answering each line prefixed with it, instead of HTTP echo.
	TCPPrefix string
	// AppAddress, when set, is a backend the test runs itself: no echo is
	// started and the sidecar forwards there.
	AppAddress string
	// Locality is region/zone/subzone, given to the sidecar and written in
	// the WorkloadEntry.
	Locality string
}

// Workload is an echo backend with its sidecar, registered in the mesh by a
// WorkloadEntry.
type Workload struct {
	Name, Namespace, Service, Version string
	Labels                            map[string]string
	// EchoAddress is where the echo backend (the app) listens.
	EchoAddress string
	// InboundAddress receives mesh traffic for the workload; InboundPort is
	// its port, the one written in the WorkloadEntry.
	InboundAddress string
	InboundPort    int
	// OutboundAddress is where the app could send its own outbound traffic.
	OutboundAddress string
	// AdminAddress is the sidecar's admin endpoint.
	AdminAddress string
	// ConfigFile is the name of the WorkloadEntry file in the config folder.
	ConfigFile string
	// Echo and Sidecar are the two processes.
	Echo, Sidecar *Process
}

// AddWorkload starts an echo backend on a free port and a sidecar whose
// inbound listener forwards to it, waits until both are up, then writes the
// WorkloadEntry that puts the workload behind its Service.
func (m *Mesh) AddWorkload(o WorkloadOptions) *Workload {
	m.t.Helper()
	if o.Service == "" {
		m.t.Fatalf("testenv: AddWorkload: Service is required")
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	labels := maps.Clone(o.Labels)
	if labels == nil {
		labels = map[string]string{"app": o.Service}
	}
	if o.Version != "" {
		if _, ok := labels["version"]; !ok {
			labels["version"] = o.Version
		}
	} else {
		o.Version = labels["version"]
	}
	if o.Name == "" {
		o.Name = o.Service
		if o.Version != "" {
			o.Name += "-" + o.Version
		}
	}
	if o.PortName == "" {
		o.PortName = "http"
	}
	w := &Workload{Name: o.Name, Namespace: o.Namespace, Service: o.Service, Version: o.Version, Labels: labels}
	id := o.Namespace + "/" + o.Name

	for attempt := 1; o.AppAddress == ""; attempt++ {
		w.EchoAddress = FreeAddr()
		args := []string{"echo", "--address", w.EchoAddress, "--service", o.Service,
			"--version", o.Version, "--namespace", o.Namespace, "--pod", o.Name}
		if o.TCPPrefix != "" {
			args = append(args, "--protocol", "tcp", "--tcp-prefix", o.TCPPrefix)
		}
		w.Echo = Start(m.t, "echo "+id, args...)
		var err error
		if o.TCPPrefix != "" {
			err = pollTCP(w.EchoAddress, StartTimeout, w.Echo.Done())
		} else {
			err = pollHTTP("http://"+w.EchoAddress+"/", 200, StartTimeout, w.Echo.Done())
		}
		if err == nil {
			break
		}
		if attempt < startAttempts && w.Echo.addrInUse() {
			w.Echo.Stop()
			continue
		}
		m.t.Fatalf("testenv: echo %s not up: %v\n%s", id, err, w.Echo.Tail(dumpLines))
	}
	if o.AppAddress != "" {
		w.EchoAddress = o.AppAddress
	}

	for attempt := 1; ; attempt++ {
		w.InboundAddress, w.OutboundAddress, w.AdminAddress = FreeAddr(), FreeAddr(), FreeAddr()
		args := []string{"proxy", "--type", "sidecar", "--name", o.Name, "--namespace", o.Namespace,
			"--labels", labelString(labels), "--xds-address", m.XDSAddress,
			"--inbound-address", w.InboundAddress, "--app-address", w.EchoAddress,
			"--outbound-address", w.OutboundAddress, "--admin-address", w.AdminAddress}
		if o.Locality != "" {
			args = append(args, "--locality", o.Locality)
		}
		args = append(args, m.opts.ProxyArgs...)
		w.Sidecar = Start(m.t, "sidecar "+id, args...)
		err := pollHTTP("http://"+w.AdminAddress+"/ready", 200, StartTimeout, w.Sidecar.Done())
		if err == nil {
			break
		}
		if attempt < startAttempts && w.Sidecar.addrInUse() {
			w.Sidecar.Stop()
			continue
		}
		m.t.Fatalf("testenv: sidecar %s not ready: %v\n%s", id, err, w.Sidecar.Tail(dumpLines))
	}
	_, port, _ := net.SplitHostPort(w.InboundAddress)
	w.InboundPort, _ = strconv.Atoi(port)
	m.addProxy(&proxyRef{name: o.Name, namespace: o.Namespace, admin: w.AdminAddress, proc: w.Sidecar})

	ports := map[string]int{o.PortName: w.InboundPort}
	for _, n := range o.PortNames {
		ports[n] = w.InboundPort
	}
	spec := map[string]any{"address": "127.0.0.1", "labels": labels, "ports": ports}
	if o.Locality != "" {
		spec["locality"] = o.Locality
	}
	w.ConfigFile = "workloadentry-" + sanitize(o.Namespace+"-"+o.Name) + ".yaml"
	m.WriteConfig(w.ConfigFile, MustYAML(map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "WorkloadEntry",
		"metadata":   map[string]any{"name": o.Name, "namespace": o.Namespace},
		"spec":       spec,
	}))
	return w
}

// ServiceYAML returns a Kubernetes Service (v1) selecting workloads by
// selector, with one port per entry of ports (name -> port number).
func ServiceYAML(name, namespace string, selector map[string]string, ports map[string]int) string {
	var list []map[string]any
	for _, n := range slices.Sorted(maps.Keys(ports)) {
		list = append(list, map[string]any{"name": n, "port": ports[n]})
	}
	return MustYAML(map[string]any{
		"apiVersion": "v1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec":       map[string]any{"selector": selector, "ports": list},
	})
}

// MustYAML marshals v to YAML, panicking on values that cannot be
// marshalled (a bug in the caller).
func MustYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("testenv: marshal YAML: %v", err))
	}
	return string(b)
}

// labelString renders labels as the proxy's --labels flag: k=v,k=v, sorted.
func labelString(labels map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}
