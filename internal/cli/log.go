package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

func addLogFlags(cmd *cobra.Command) {
	cmd.Flags().String("log-level", "info", "log level: debug, info, warn, error")
	cmd.Flags().Bool("log-json", false, "log as JSON lines")
}

// newLogger builds the command's logger from its --log-level/--log-json.
func newLogger(cmd *cobra.Command) *slog.Logger {
	lvl := slog.LevelInfo
	if s, err := cmd.Flags().GetString("log-level"); err == nil {
		lvl.UnmarshalText([]byte(s))
	}
	asJSON, _ := cmd.Flags().GetBool("log-json")
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if asJSON {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return slog.New(h).With("cmd", cmd.Name())
}
