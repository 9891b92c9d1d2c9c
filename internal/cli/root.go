// Package cli wires sluice's subcommands together with cobra. Each command
// lives in its own file and only parses flags into the option struct of the
// package that does the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Execute runs the command line and returns the process exit code.
func Execute() int {
	root := newRootCommand()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		// A command may end with its own status (analyze: istioctl's).
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			return coded.ExitCode()
		}
		return 1
	}
	return 0
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "A service mesh that enforces Istio's API with one small binary",
		Long: `sluice reads Istio configuration (VirtualService, DestinationRule, ServiceEntry,
WorkloadEntry, Gateway, ...) unchanged and enforces it: "sluice control" compiles it
into Envoy xDS, "sluice proxy" routes traffic by it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range commands {
		root.AddCommand(add())
	}
	return root
}

// commands is filled by each command file's init, so adding a command
// touches only its own file.
var commands []func() *cobra.Command

func register(c func() *cobra.Command) { commands = append(commands, c) }
