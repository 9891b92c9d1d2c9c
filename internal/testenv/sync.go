package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/pkg/config"
)

// syncedKinds are the kinds the control plane keeps (and so lists in
// /debug/configz); documents of other kinds are skipped by it.
var syncedKinds = map[string]bool{
	"virtualservice": true, "destinationrule": true, "gateway": true, "serviceentry": true,
	"workloadentry": true, "sidecar": true, "service": true,
	// Kubernetes Gateway API, keyed as config.ResourceKind names them.
	"gatewayclass": true, "gateway.gateway.networking.k8s.io": true, "httproute": true, "grpcroute": true,
	"tcproute": true, "tlsroute": true, "referencegrant": true, "namespace": true,
}

// resourceKey names one resource a config file defines.
type resourceKey struct{ Kind, Namespace, Name string }

// keysOf lists the resources of kinds in syncedKinds that yaml defines.
// Unreadable documents are left out: the control plane reports them.
func keysOf(data string) []resourceKey {
	keys := []resourceKey{}
	rd := k8syaml.NewYAMLReader(bufio.NewReader(strings.NewReader(data)))
	for {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) || err != nil {
			break
		}
		var d struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if len(bytes.TrimSpace(doc)) == 0 || yaml.Unmarshal(doc, &d) != nil {
			continue
		}
		group := ""
		if i := strings.LastIndexByte(d.APIVersion, '/'); i >= 0 {
			group = d.APIVersion[:i]
		}
		kind := config.ResourceKind(group, d.Kind)
		if !syncedKinds[strings.ToLower(string(kind))] || d.Metadata.Name == "" {
			continue
		}
		ns := d.Metadata.Namespace
		switch {
		case config.ClusterScoped(kind):
			ns = ""
		case ns == "":
			ns = "default"
		}
		keys = append(keys, resourceKey{strings.ToLower(string(kind)), ns, d.Metadata.Name})
	}
	return keys
}

// configz is the part of /debug/configz the sync check reads.
type configz struct {
	Resources []struct{ Kind, Namespace, Name, Source string } `json:"resources"`
	Errors    []string                                         `json:"errors"`
}

// filesLoaded returns nil once the control plane holds every resource of
// every file written through the mesh, each from its own file, or reports
// an error naming that file.
func (m *Mesh) filesLoaded() error {
	var cz configz
	if err := getJSON(m.URL("/debug/configz"), &cz); err != nil {
		return err
	}
	m.mu.Lock()
	files := make(map[string][]resourceKey, len(m.files))
	for k, v := range m.files {
		files[k] = v
	}
	m.mu.Unlock()
	have := map[resourceKey]string{}
	for _, r := range cz.Resources {
		have[resourceKey{strings.ToLower(r.Kind), r.Namespace, r.Name}] = r.Source
	}
	for name, keys := range files {
		if mentions(cz.Errors, name) {
			continue
		}
		for _, k := range keys {
			src, ok := have[k]
			// From the cluster every resource's source is "kubernetes".
			if !ok || (m.opts.Store == nil && !strings.Contains(src, name)) {
				return fmt.Errorf("control plane has not loaded %s %s/%s from %s yet", k.Kind, k.Namespace, k.Name, name)
			}
		}
	}
	return nil
}

func mentions(list []string, s string) bool {
	for _, e := range list {
		if strings.Contains(e, s) {
			return true
		}
	}
	return false
}

// Synced reports why the mesh is not in sync yet, or nil when: the control
// plane holds every resource written through WriteConfig, it has read its
// folder since the last write and pushed what it found, every proxy the mesh
// started is connected, and each has ACKed the version last sent for every
// type, with no NACK outstanding.
//
// An edit that changes a resource in place cannot be seen in the status, so
// that case rests on the folder read time alone: tests should still check the
// new behaviour with WaitConverged.
func (m *Mesh) Synced() error {
	if err := m.filesLoaded(); err != nil {
		return err
	}
	st, err := m.TryStatus()
	if err != nil {
		return err
	}
	m.mu.Lock()
	lastWrite := m.lastWrite
	m.mu.Unlock()
	// The control plane reports when it last read its folder, once what it
	// read is pushed; a read after the write saw it.
	if !lastWrite.IsZero() && !st.ConfigRead.After(lastWrite) {
		return fmt.Errorf("the control plane has not read its folder since the last config write at %s (last read %s)",
			lastWrite.Format(time.StampMilli), st.ConfigRead.Format(time.StampMilli))
	}
	var problems []string
	for _, p := range m.proxyRefs() {
		ps, ok := st.Proxy(p.name, p.namespace)
		if !ok {
			problems = append(problems, fmt.Sprintf("proxy %s/%s not connected", p.namespace, p.name))
			continue
		}
		if len(ps.Types) == 0 {
			problems = append(problems, fmt.Sprintf("proxy %s: nothing sent yet", ps.ID))
		}
		for _, ts := range ps.Types {
			switch {
			case ts.Nack != "":
				problems = append(problems, fmt.Sprintf("proxy %s NACKed %s: %s", ps.ID, shortTypeName(ts.Type), ts.Nack))
			case ts.AckedVersion != ts.SentVersion:
				problems = append(problems, fmt.Sprintf("proxy %s %s: sent %q, acked %q", ps.ID,
					shortTypeName(ts.Type), ts.SentVersion, ts.AckedVersion))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// WaitSynced waits until Synced reports nil twice in a row, failing the test
// after timeout. It is a strong hint that configuration has landed; tests
// still check behaviour with WaitConverged.
func (m *Mesh) WaitSynced(timeout time.Duration) {
	m.t.Helper()
	good := 0
	err := Eventually(func() error {
		if err := m.Synced(); err != nil {
			good = 0
			return err
		}
		if good++; good < 2 {
			return errors.New("synced once, confirming")
		}
		return nil
	}, timeout)
	if err != nil {
		m.t.Fatalf("testenv: mesh not synced: %v", err)
	}
}

// CheckNoNACK returns an error listing every NACK the control plane has
// recorded, or nil when no proxy rejected its config.
func (m *Mesh) CheckNoNACK() error {
	st, err := m.TryStatus()
	if err != nil {
		return err
	}
	if n := st.NACKs(); len(n) > 0 {
		return fmt.Errorf("%d NACK(s): %s", len(n), strings.Join(n, "; "))
	}
	return nil
}
