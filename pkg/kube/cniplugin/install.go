package cniplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// InstallOptions say where the node's CNI files are and what the plugin's
// entry holds.
type InstallOptions struct {
	// ConfDir (/etc/cni/net.d) and BinDir (/opt/cni/bin) are the node's.
	ConfDir, BinDir string
	// Binary is the sluice binary copied to BinDir as BinaryName.
	Binary            string
	AgentSocket       string
	ExcludeNamespaces []string
}

// Install copies the binary into the CNI bin directory as the plugin and
// chains the plugin's entry into the node's primary network
// configuration, as istio-cni's install does (cni/pkg/install
// cniconfig.go): the first valid configuration by file name (the one the
// runtime uses), a single-plugin .conf turned into a .conflist, a
// previous entry of the plugin replaced. It returns the file written.
func Install(o InstallOptions) (string, error) {
	if err := copyAtomic(o.Binary, filepath.Join(o.BinDir, BinaryName)); err != nil {
		return "", fmt.Errorf("cni install: %w", err)
	}
	path, err := primaryConfig(o.ConfDir)
	if err != nil {
		return "", fmt.Errorf("cni install: %w", err)
	}
	entry := map[string]any{"type": BinaryName, "name": BinaryName, "agent_socket": o.AgentSocket}
	if len(o.ExcludeNamespaces) > 0 {
		entry["exclude_namespaces"] = o.ExcludeNamespaces
	}
	return rewrite(path, func(list map[string]any) {
		list["plugins"] = append(withoutPlugin(list), entry)
	})
}

// Uninstall takes the plugin's entry out of the primary configuration and
// the plugin out of the bin directory.
func Uninstall(confDir, binDir string) error {
	path, err := primaryConfig(confDir)
	if err != nil {
		return fmt.Errorf("cni uninstall: %w", err)
	}
	if _, err := rewrite(path, func(list map[string]any) { list["plugins"] = withoutPlugin(list) }); err != nil {
		return fmt.Errorf("cni uninstall: %w", err)
	}
	if err := os.Remove(filepath.Join(binDir, BinaryName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cni uninstall: %w", err)
	}
	return nil
}

// primaryConfig is the first valid network configuration in dir by name
// (istio-cni's getConfigFilenames).
func primaryConfig(dir string) (string, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist"})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	for _, f := range files {
		if strings.HasSuffix(f, ".conflist") {
			if l, err := libcni.ConfListFromFile(f); err == nil && len(l.Plugins) > 0 {
				return f, nil
			}
			continue
		}
		if c, err := libcni.ConfFromFile(f); err == nil && c.Network.Type != "" {
			return f, nil
		}
	}
	return "", fmt.Errorf("no valid network configuration in %s", dir)
}

// rewrite applies edit to path's configuration as a list and writes it
// back (a .conf becomes <name>.conflist, the .conf removed).
func rewrite(path string, edit func(map[string]any)) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	out := path
	if _, single := m["type"]; single {
		version := m["cniVersion"]
		delete(m, "cniVersion")
		name, _ := m["name"].(string)
		m = map[string]any{"cniVersion": version, "name": name, "plugins": []any{m}}
		out = strings.TrimSuffix(path, ".conf") + ".conflist"
	}
	edit(m)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	if err := writeAtomic(out, append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	if out != path {
		if err := os.Remove(path); err != nil {
			return "", err
		}
	}
	return out, nil
}

func withoutPlugin(list map[string]any) []any {
	plugins, _ := list["plugins"].([]any)
	var out []any
	for _, p := range plugins {
		if pm, ok := p.(map[string]any); ok && pm["type"] == BinaryName {
			continue
		}
		out = append(out, p)
	}
	return out
}

func copyAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
