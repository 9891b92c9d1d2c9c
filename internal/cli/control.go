package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/controlplane"
	"github.com/sluice-mesh/sluice/pkg/meshconfig"
)

func init() { register(newControlCommand) }

func newControlCommand() *cobra.Command {
	var (
		configDir, meshConfig, xdsAddr, httpAddr, caDir, jwksCAFile string
	)
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane: read config, serve xDS to proxies",
		Long: `control reads Istio configuration and the service registry (ServiceEntry,
WorkloadEntry, Kubernetes Service) from a folder, watches it, compiles it into
Envoy xDS v3 for each connected proxy and serves it over ADS.

Status:  GET /ready, /debug/status, /debug/syncz, /debug/configz,
         /debug/config_dump?proxy=<node id> on --http-address.`,
		Example: `  sluice control --config-dir ./mesh
  sluice control --config-dir ./mesh --mesh-config mesh.yaml --xds-address 127.0.0.1:15010`,
		RunE: func(cmd *cobra.Command, args []string) error {
			mesh, err := meshconfig.Load(meshConfig)
			if err != nil {
				return err
			}
			var jwksCA []byte
			if jwksCAFile != "" {
				if jwksCA, err = os.ReadFile(jwksCAFile); err != nil {
					return fmt.Errorf("--jwks-ca-file: %w", err)
				}
			}
			c, err := controlplane.New(controlplane.Options{
				ConfigDir: configDir, Mesh: mesh, XDSAddress: xdsAddr, HTTPAddress: httpAddr, CADir: caDir, JwksCAPEM: jwksCA,
				Logger: newLogger(cmd),
			})
			if err != nil {
				return err
			}
			return c.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configDir, "config-dir", "", "folder of YAML config and registry (required)")
	f.StringVar(&meshConfig, "mesh-config", "", "Istio MeshConfig YAML file")
	f.StringVar(&xdsAddr, "xds-address", "127.0.0.1:15010", "address to serve xDS (ADS) on")
	f.StringVar(&httpAddr, "http-address", "127.0.0.1:15014", "address to serve status and debug on")
	f.StringVar(&caDir, "ca-dir", "", "folder keeping the mesh CA's root certificate and key across restarts (default: a new root in memory)")
	f.StringVar(&jwksCAFile, "jwks-ca-file", "", "PEM CA certificates trusted, besides the system roots, for https jwksUris of RequestAuthentications")
	cmd.MarkFlagRequired("config-dir")
	addLogFlags(cmd)
	return cmd
}
