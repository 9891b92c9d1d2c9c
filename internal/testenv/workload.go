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
	// Ports are further ports of the workload, served by the same sidecar
	// (one more --inbound-address/--app-address pair each), as a pod's
	// sidecar serves every port of its pod.
	Ports []WorkloadPort
	// IP is the workload's own address, as a pod's IP (see LoopbackIP):
	// its echo, its sidecar's inbound listeners and its WorkloadEntry use
	// it, and the sidecar gets it as --ip. Default 127.0.0.1.
	IP string
	// InboundPort, when set, is the port the workload serves its first
	// port on (the pod's container port): the sidecar's inbound listener,
	// or the echo itself without a sidecar. Default a free port.
	InboundPort int
	// ServiceAccount is the workload's service account (its identity);
	// empty leaves the sidecar's default.
	ServiceAccount string
	// NoSidecar runs the app alone, as a pod without injection (so without
	// the tlsMode label): the
	// WorkloadEntry points at the echo, which gets plaintext from anyone.
	NoSidecar bool
	// OutboundTCPIP gives the workload's sidecar outbound TCP listeners
	// at that IP (one per TCP service port), as ClientOptions': the app's
	// own TCP calls. Use a 127.x address of the test's own.
	OutboundTCPIP string
	// NoTLSModeLabel leaves out the label security.istio.io/tlsMode: istio
	// that the WorkloadEntry (and the sidecar's labels) otherwise carry, as
	// injection labels a pod with a sidecar: clients then talk plaintext to
	// it (auto mTLS, docs/security.md). A Labels entry for the key wins.
	NoTLSModeLabel bool
}

// TLSModeLabel marks a workload with a sidecar as able to take mesh mTLS.
const TLSModeLabel = "security.istio.io/tlsMode"

// WorkloadPort is one more port of a workload: its own backend and inbound
// address on the workload's sidecar.
type WorkloadPort struct {
	// Names are the Service port names the WorkloadEntry maps to it.
	Names []string
	// TCPPrefix makes its backend a TCP line echo, as WorkloadOptions'.
	TCPPrefix string
	// AppAddress, when set, is a backend the test runs itself.
	AppAddress string
	// InboundPort, when set, is the port it is served on (the container
	// port), as WorkloadOptions.InboundPort.
	InboundPort int
}

// PortInstance is a port of a running workload beyond the first.
type PortInstance struct {
	// InboundAddress receives mesh traffic for the port; InboundPort is
	// its port, the one written in the WorkloadEntry.
	InboundAddress string
	InboundPort    int
	// AppAddress is where its backend listens; Echo the backend process
	// (nil when the test runs the backend).
	AppAddress string
	Echo       *Process
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
	// Ports are the workload's further ports, in WorkloadOptions.Ports order.
	Ports []PortInstance
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
	if _, set := labels[TLSModeLabel]; !set && !o.NoTLSModeLabel && !o.NoSidecar {
		labels[TLSModeLabel] = "istio"
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
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	w := &Workload{Name: o.Name, Namespace: o.Namespace, Service: o.Service, Version: o.Version, Labels: labels}
	id := o.Namespace + "/" + o.Name

	// Without a sidecar the echo serves the workload's ports itself.
	echoPort := func(port int) int {
		if o.NoSidecar {
			return port
		}
		return 0
	}
	if o.AppAddress != "" {
		w.EchoAddress = o.AppAddress
	} else {
		w.EchoAddress, w.Echo = m.startEcho(id, o, o.TCPPrefix, echoPort(o.InboundPort))
	}
	for _, po := range o.Ports {
		pi := PortInstance{AppAddress: po.AppAddress}
		if pi.AppAddress == "" {
			pi.AppAddress, pi.Echo = m.startEcho(id, o, po.TCPPrefix, echoPort(po.InboundPort))
		}
		w.Ports = append(w.Ports, pi)
	}
	if o.NoSidecar {
		w.InboundAddress = w.EchoAddress
		for i := range w.Ports {
			w.Ports[i].InboundAddress = w.Ports[i].AppAddress
		}
	} else {
		m.startSidecar(w, o)
	}
	_, port, _ := net.SplitHostPort(w.InboundAddress)
	w.InboundPort, _ = strconv.Atoi(port)

	ports := map[string]int{o.PortName: w.InboundPort}
	for _, n := range o.PortNames {
		ports[n] = w.InboundPort
	}
	for i := range w.Ports {
		_, port, _ := net.SplitHostPort(w.Ports[i].InboundAddress)
		w.Ports[i].InboundPort, _ = strconv.Atoi(port)
		for _, n := range o.Ports[i].Names {
			ports[n] = w.Ports[i].InboundPort
		}
	}
	spec := map[string]any{"address": o.IP, "labels": labels, "ports": ports}
	if o.Locality != "" {
		spec["locality"] = o.Locality
	}
	if o.ServiceAccount != "" {
		spec["serviceAccount"] = o.ServiceAccount
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

// startSidecar starts the workload's sidecar, its inbound listeners at
// o.IP (on the given ports, else free ones), and waits until it is ready.
func (m *Mesh) startSidecar(w *Workload, o WorkloadOptions) {
	m.t.Helper()
	id := o.Namespace + "/" + o.Name
	inbound := func(port int) string {
		if port != 0 {
			return net.JoinHostPort(o.IP, strconv.Itoa(port))
		}
		return FreeAddrOn(o.IP)
	}
	for attempt := 1; ; attempt++ {
		w.InboundAddress, w.OutboundAddress, w.AdminAddress = inbound(o.InboundPort), FreeAddr(), FreeAddr()
		args := []string{"proxy", "--type", "sidecar", "--name", o.Name, "--namespace", o.Namespace,
			"--labels", labelString(w.Labels),
			"--inbound-address", w.InboundAddress, "--app-address", w.EchoAddress,
			"--outbound-address", w.OutboundAddress, "--admin-address", w.AdminAddress}
		for i := range w.Ports {
			w.Ports[i].InboundAddress = inbound(o.Ports[i].InboundPort)
			args = append(args, "--inbound-address", w.Ports[i].InboundAddress, "--app-address", w.Ports[i].AppAddress)
		}
		if o.Locality != "" {
			args = append(args, "--locality", o.Locality)
		}
		if o.IP != "127.0.0.1" {
			args = append(args, "--ip", o.IP)
		}
		if o.ServiceAccount != "" {
			args = append(args, "--service-account", o.ServiceAccount)
		}
		if o.OutboundTCPIP != "" {
			args = append(args, "--outbound-tcp-ip", o.OutboundTCPIP)
		}
		args = append(append(args, m.ProxyControlArgs()...), m.opts.ProxyArgs...)
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
	m.addProxy(&proxyRef{name: o.Name, namespace: o.Namespace, admin: w.AdminAddress, proc: w.Sidecar})
}

// startEcho starts an echo backend for workload o on port (a free one
// when 0) of its IP (a TCP
// line echo answering with tcpPrefix when set) and waits until it is up.
func (m *Mesh) startEcho(id string, o WorkloadOptions, tcpPrefix string, port int) (string, *Process) {
	m.t.Helper()
	ip := o.IP
	if ip == "" {
		ip = "127.0.0.1"
	}
	for attempt := 1; ; attempt++ {
		addr := FreeAddrOn(ip)
		if port != 0 {
			addr = net.JoinHostPort(ip, strconv.Itoa(port))
		}
		args := []string{"echo", "--address", addr, "--service", o.Service,
			"--version", o.Version, "--namespace", o.Namespace, "--pod", o.Name}
		if tcpPrefix != "" {
			args = append(args, "--protocol", "tcp", "--tcp-prefix", tcpPrefix)
		}
		echo := Start(m.t, "echo "+id, args...)
		var err error
		if tcpPrefix != "" {
			err = pollTCP(addr, StartTimeout, echo.Done())
		} else {
			err = pollHTTP("http://"+addr+"/", 200, StartTimeout, echo.Done())
		}
		if err == nil {
			return addr, echo
		}
		if attempt < startAttempts && echo.addrInUse() {
			echo.Stop()
			continue
		}
		m.t.Fatalf("testenv: echo %s not up: %v\n%s", id, err, echo.Tail(dumpLines))
	}
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
