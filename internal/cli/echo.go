package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sluice-mesh/sluice/pkg/echo"
)

func init() { register(newEchoCommand) }

func newEchoCommand() *cobra.Command {
	var (
		opts      echo.Options
		protocol  string
		tcpPrefix string
	)
	cmd := &cobra.Command{
		Use:   "echo --service S [--version V] [--namespace NS] [--pod P] [--address ADDR]",
		Short: "Run the echo backend, which answers every request with JSON describing it",
		Long: `sluice echo is the test backend: it answers every request, any method and any
path, with JSON naming the service, version, namespace and pod that answered and
describing the request it received. It speaks HTTP/1.1 and cleartext HTTP/2
(prior knowledge) on the same port.

A request can ask for a status (?status=503 or X-Echo-Status), a delay
(?delay=250ms or X-Echo-Delay), a body of exactly N bytes (?size=1024 or
X-Echo-Size) and extra response headers (X-Echo-Set-Header: name:value,...).

With --protocol tcp it is a line echo instead, like Istio's tcp-echo sample:
each line comes back prefixed with --tcp-prefix.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if protocol == "tcp" {
				srv, err := echo.StartTCP(cmd.Context(), echo.TCPOptions{Address: opts.Address, Prefix: tcpPrefix})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "echo: tcp line echo (prefix %q) listening on %s\n", tcpPrefix, srv.Addr())
				srv.Wait()
				return nil
			}
			if protocol != "http" {
				return fmt.Errorf("echo: --protocol %q: must be http or tcp", protocol)
			}
			if opts.Service == "" {
				return errors.New("echo: --service is required")
			}
			srv := echo.New(opts)
			addr, err := srv.Start(cmd.Context())
			if err != nil {
				return err
			}
			o := srv.Options()
			fmt.Fprintf(cmd.ErrOrStderr(), "echo: service=%s version=%s pod=%s listening on %s\n",
				o.Service, o.Version, o.Pod, addr)
			return srv.Wait()
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Address, "address", echo.DefaultAddress, "address to listen on, host:port")
	f.StringVar(&opts.Service, "service", "", "service name reported in responses (required)")
	f.StringVar(&opts.Version, "version", "", "version reported in responses")
	f.StringVar(&opts.Namespace, "namespace", "default", "namespace reported in responses")
	f.StringVar(&protocol, "protocol", "http", "http, or tcp for a line echo like Istio's tcp-echo sample")
	f.StringVar(&tcpPrefix, "tcp-prefix", "", "tcp: the word each echoed line starts with (tcp-echo's \"one\"/\"two\")")
	f.StringVar(&opts.Pod, "pod", "", `pod name reported in responses (default "<service>-<version>", or the service when no version)`)
	return cmd
}
