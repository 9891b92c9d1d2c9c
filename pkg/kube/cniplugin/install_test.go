package cniplugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func pluginTypes(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Plugins []struct{ Type string } `json:"plugins"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range l.Plugins {
		out = append(out, p.Type)
	}
	return out
}

// TestInstallChains: the plugin is appended to the primary (first by
// name) configuration list once however often it is installed, a
// single-plugin .conf becomes a .conflist, the binary lands in the bin
// directory, and uninstall takes both away.
func TestInstallChains(t *testing.T) {
	conf, bin := t.TempDir(), t.TempDir()
	self, _ := os.Executable()
	writeFile(t, filepath.Join(conf, "10-flannel.conflist"),
		`{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"flannel"},{"type":"portmap","capabilities":{"portMappings":true}}]}`)
	writeFile(t, filepath.Join(conf, "20-other.conf"), `{"cniVersion":"0.3.1","name":"x","type":"bridge"}`)
	o := InstallOptions{ConfDir: conf, BinDir: bin, Binary: self, AgentSocket: "/run/x.sock"}
	for range 2 {
		path, err := Install(o)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(path) != "10-flannel.conflist" {
			t.Fatalf("chained into %s", path)
		}
	}
	if got := pluginTypes(t, filepath.Join(conf, "10-flannel.conflist")); len(got) != 3 || got[2] != BinaryName {
		t.Errorf("plugins %v", got)
	}
	if st, err := os.Stat(filepath.Join(bin, BinaryName)); err != nil || st.Mode()&0o111 == 0 {
		t.Errorf("binary: %v %v", st, err)
	}
	if err := Uninstall(conf, bin); err != nil {
		t.Fatal(err)
	}
	if got := pluginTypes(t, filepath.Join(conf, "10-flannel.conflist")); len(got) != 2 {
		t.Errorf("after uninstall: %v", got)
	}
	if _, err := os.Stat(filepath.Join(bin, BinaryName)); !os.IsNotExist(err) {
		t.Errorf("binary left: %v", err)
	}

	single := t.TempDir()
	writeFile(t, filepath.Join(single, "10-bridge.conf"), `{"cniVersion":"0.3.1","name":"br","type":"bridge"}`)
	path, err := Install(InstallOptions{ConfDir: single, BinDir: bin, Binary: self})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "10-bridge.conflist" {
		t.Errorf("a .conf chained into %s", path)
	}
	if got := pluginTypes(t, path); len(got) != 2 || got[0] != "bridge" || got[1] != BinaryName {
		t.Errorf("plugins %v", got)
	}
	if _, err := os.Stat(filepath.Join(single, "10-bridge.conf")); !os.IsNotExist(err) {
		t.Error("the .conf is still there beside its .conflist")
	}
	if _, err := Install(InstallOptions{ConfDir: t.TempDir(), BinDir: bin, Binary: self}); err == nil {
		t.Error("install with no network configuration succeeded")
	}
}
