package cli

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/ca"
)

// defaultStateDir is where `sluice control` writes what proxies need to
// connect (bootstrap token, token signing key, root-cert.pem) and where
// `sluice proxy` looks for them: $XDG_STATE_HOME/sluice, else
// ~/.local/state/sluice. Both default to it, so a local mesh of one user
// works without flags; other users cannot read it (0700 folder, 0600 files).
func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "sluice")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "sluice")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("sluice-%d", os.Getuid()))
}

// isLoopback tells whether host:port names this machine only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// xdsTLS is --xds-tls: as given, else on for any address that is not
// loopback (a token must not cross a network in the clear).
func xdsTLS(cmd *cobra.Command, flag bool, addr string) bool {
	if cmd.Flags().Changed("xds-tls") {
		return flag
	}
	return !isLoopback(addr)
}

// envDuration is a duration from an environment variable (Istio's
// DEFAULT_WORKLOAD_CERT_TTL, MAX_WORKLOAD_CERT_TTL, SECRET_TTL) or def.
func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func init() { register(newCACommand) }

func newCACommand() *cobra.Command {
	var dir, trustDomain string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Manage the mesh CA's roots in a --ca-dir folder (rotation)",
		Long: `ca manages the self-signed CA that "sluice control --ca-dir DIR" keeps in DIR:
root-cert.pem is the trust bundle (every root workloads trust), root-key.pem the
key of the root that signs. A running control plane watches DIR (and re-reads it
on SIGHUP) and pushes a changed bundle to every proxy at once.

Root rotation:
  sluice ca rotate --ca-dir DIR       # a new root signs; the old stays trusted
  # proxies trust the new bundle at once and renew within seconds; wait one
  # workload certificate TTL (default 24h) so every certificate is renewed,
  # or check that no proxy's /certs shows the old root as its issuer
  sluice ca retire-old --ca-dir DIR   # the bundle keeps the signing root only

A plug-in CA (Istio's cacerts: ca-cert.pem, ca-key.pem, cert-chain.pem,
root-cert.pem) is rotated by editing its files, as in Istio.`,
	}
	cmd.PersistentFlags().StringVar(&dir, "ca-dir", "", "the control plane's --ca-dir (required)")
	cmd.MarkPersistentFlagRequired("ca-dir")
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new root that signs from now on, keeping the old roots trusted",
		RunE: func(cmd *cobra.Command, args []string) error {
			root, err := ca.Rotate(dir, trustDomain)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new signing root %s (serial %s) in %s; the old roots stay trusted.\n"+
				"A control plane watching %s pushes the bundle now; run `sluice ca retire-old --ca-dir %s` once every workload has renewed.\n",
				root.Subject.CommonName, root.SerialNumber.Text(16), filepath.Join(dir, ca.FileRootCert), dir, dir)
			return nil
		},
	}
	rotate.Flags().StringVar(&trustDomain, "trust-domain", "", "trust domain named in the new root (default: the current root's)")
	retire := &cobra.Command{
		Use:   "retire-old",
		Short: "Remove every root but the signing one from the trust bundle",
		RunE: func(cmd *cobra.Command, args []string) error {
			removed, err := ca.RetireOld(dir)
			if err != nil {
				return err
			}
			if len(removed) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "the trust bundle holds the signing root only; nothing to retire")
			}
			for _, r := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "retired root %s (serial %s)\n", r.Subject.CommonName, r.SerialNumber.Text(16))
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "roots",
		Short: "List the trust bundle's roots and which one signs",
		RunE: func(cmd *cobra.Command, args []string) error {
			roots, signer, err := ca.Roots(dir)
			if err != nil {
				return err
			}
			for _, r := range roots {
				mark := "trusted"
				if r.Equal(signer) {
					mark = "signing"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%-8s %s serial %s expires %s\n", mark, r.Subject.CommonName,
					r.SerialNumber.Text(16), r.NotAfter.UTC().Format(time.RFC3339))
			}
			if !signer.IsCA || !containsCert(roots, signer) {
				fmt.Fprintf(cmd.OutOrStdout(), "signing  %s (intermediate, plug-in CA)\n", signer.Subject)
			}
			return nil
		},
	}
	cmd.AddCommand(rotate, retire, list)
	return cmd
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// envBool is a boolean from an environment variable (istiod's feature
// flags, e.g. PILOT_ENABLE_GATEWAY_API_DEPLOYMENT_CONTROLLER) or def.
func envBool(name string, def bool) bool {
	if v := os.Getenv(name); v != "" {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}
