package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

// `sluice control token` mints a token the control plane's key verifies
// and that permits exactly the identity asked for; the file is 0600.
func TestControlTokenCommand(t *testing.T) {
	state := t.TempDir()
	tokens, err := ca.LoadOrCreateTokens(ca.TokenOptions{BootstrapFile: filepath.Join(state, ca.FileBootstrapToken)})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "reviews.token")
	if msg, err := run(t, "control", "token", "--state-dir", state, "--namespace", "shop", "--service-account", "reviews", "--out", out); err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(out)
	c, err := tokens.Check(strings.TrimSpace(string(b)))
	if err != nil || !c.Permits("shop", "reviews") || c.Permits("shop", "ratings") {
		t.Errorf("token: %+v %v", c, err)
	}
	if _, err := run(t, "control", "token", "--state-dir", t.TempDir(), "--namespace", "a", "--service-account", "b"); err == nil {
		t.Error("a state folder without a signing key must be an error")
	}
}

// `sluice ca rotate` / `roots` / `retire-old` on a CA folder.
func TestCACommands(t *testing.T) {
	dir := t.TempDir()
	if _, err := ca.New(ca.Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if msg, err := run(t, "ca", "rotate", "--ca-dir", dir); err != nil || !strings.Contains(msg, "old roots stay trusted") {
		t.Fatalf("rotate: %v\n%s", err, msg)
	}
	msg, err := run(t, "ca", "roots", "--ca-dir", dir)
	if err != nil || strings.Count(msg, "signing") != 1 || strings.Count(msg, "trusted") != 1 {
		t.Fatalf("roots after rotate: %v\n%s", err, msg)
	}
	if msg, err := run(t, "ca", "retire-old", "--ca-dir", dir); err != nil || !strings.Contains(msg, "retired root") {
		t.Fatalf("retire-old: %v\n%s", err, msg)
	}
	if msg, _ := run(t, "ca", "roots", "--ca-dir", dir); strings.Contains(msg, "trusted") {
		t.Errorf("an old root is still trusted:\n%s", msg)
	}
}

// --xds-tls defaults on for an address that is not loopback.
func TestXDSTLSDefault(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:15010": false, "localhost:15010": false, "[::1]:15010": false,
		"0.0.0.0:15010": true, "10.1.2.3:15012": true, "istiod.istio-system.svc:15012": true} {
		if got := xdsTLS(&cobra.Command{}, false, addr); got != want {
			t.Errorf("%s: TLS %v, want %v", addr, got, want)
		}
	}
	cmd := newProxyCommand()
	cmd.Flags().Parse([]string{"--xds-tls=false"})
	if xdsTLS(cmd, false, "10.1.2.3:15012") {
		t.Error("an explicit --xds-tls=false must win")
	}
}
