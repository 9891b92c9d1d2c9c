package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// servicePort is the port every bench Service serves (named http); the
// WorkloadEntries map it to targetPort.
const (
	servicePort = 80
	targetPort  = 8080
)

// meshSpec is the configuration of one scale point: services spread over
// namespaces, each with its WorkloadEntries; a VirtualService with two
// weighted subsets (and their DestinationRule) on every vsEvery-th
// service; with sidecarScope a Sidecar per namespace importing only its
// own namespace and istio-system.
type meshSpec struct {
	services, endpoints int
	namespaces          int
	vsEvery             int
	sidecarScope        bool
}

func (m meshSpec) namespace(i int) string { return fmt.Sprintf("ns-%d", i%m.namespaces) }
func (m meshSpec) service(i int) string   { return fmt.Sprintf("svc-%d", i) }
func (m meshSpec) host(i int) string {
	return m.service(i) + "." + m.namespace(i) + ".svc.cluster.local"
}

// cluster is the name of service i's outbound cluster (and of its EDS
// resource), as Istio names it: outbound|port|subset|host.
func (m meshSpec) cluster(i int, subset string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", servicePort, subset, m.host(i))
}

func (m meshSpec) hasVirtualService(i int) bool { return m.vsEvery > 0 && i%m.vsEvery == 0 }

// endpointIP is the address of endpoint j of service i: 10.x.y.z, unique,
// never dialled.
func endpointIP(i, j, perService int) string {
	n := i*perService + j + 1
	return fmt.Sprintf("10.%d.%d.%d", (n>>16)&0xff, (n>>8)&0xff, n&0xff)
}

// write puts the whole mesh into dir: one file per namespace with its
// Services and WorkloadEntries, one per VirtualService/DestinationRule
// pair, one per Sidecar.
func (m meshSpec) write(dir string) error {
	files := map[string]*strings.Builder{}
	for i := range m.services {
		ns := m.namespace(i)
		b := files[ns]
		if b == nil {
			b = &strings.Builder{}
			files[ns] = b
		}
		b.WriteString(m.serviceYAML(i))
		for j := range m.endpoints {
			version := []string{"v1", "v2"}[j%2]
			b.WriteString(workloadEntryYAML(m, i, fmt.Sprintf("%s-%d", m.service(i), j), endpointIP(i, j, m.endpoints), version))
		}
	}
	for ns, b := range files {
		if err := writeAtomic(dir, "registry-"+ns+".yaml", b.String()); err != nil {
			return err
		}
	}
	for i := range m.services {
		if m.hasVirtualService(i) {
			if err := writeAtomic(dir, m.routeFile(i), m.routeYAML(i, 90)); err != nil {
				return err
			}
		}
	}
	if m.sidecarScope {
		for k := range min(m.namespaces, m.services) {
			ns := m.namespace(k)
			y := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: %s}
spec:
  egress:
  - hosts: ["./*", "istio-system/*"]
`, ns)
			if err := writeAtomic(dir, "sidecar-"+ns+".yaml", y); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m meshSpec) serviceYAML(i int) string {
	return fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  selector: {app: %s}
  ports: [{name: http, port: %d}]
`, m.service(i), m.namespace(i), m.service(i), servicePort)
}

func workloadEntryYAML(m meshSpec, i int, name, ip, version string) string {
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s, namespace: %s}
spec:
  address: %s
  labels: {app: %s, version: %s}
  ports: {http: %d}
`, name, m.namespace(i), ip, m.service(i), version, targetPort)
}

func (m meshSpec) routeFile(i int) string { return "route-" + m.service(i) + ".yaml" }

// routeYAML is service i's DestinationRule (subsets v1, v2) and
// VirtualService sending weightV1 percent to v1, the rest to v2.
func (m meshSpec) routeYAML(i, weightV1 int) string {
	h := m.host(i)
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  host: %[3]s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  hosts: [%[3]s]
  http:
  - route:
    - destination: {host: %[3]s, subset: v1}
      weight: %[4]d
    - destination: {host: %[3]s, subset: v2}
      weight: %[5]d
`, m.service(i), m.namespace(i), h, weightV1, 100-weightV1)
}

// writeAtomic writes a config file the way an editor or kubectl-sync
// would without the control plane ever reading half of it: a hidden
// temporary file in the folder, renamed into place.
func writeAtomic(dir, name, content string) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
