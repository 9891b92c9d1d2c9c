// Package telemetryexpr is the expression support of Telemetry metrics
// tagOverrides values (Istio's CEL attribute expressions).
//
// STUB by the Telemetry-API helper: the METRICS helper owns this package
// and provides the real Check (the expressions its stats compiler can
// evaluate); at merge, this file is replaced by theirs. Until then Check
// only requires a valid CEL expression, as istiod's validation does not
// even parse tagOverrides values.
package telemetryexpr

import (
	"fmt"

	"github.com/google/cel-go/cel"
)

var env, _ = cel.NewEnv()

// Check reports whether expr is an expression tagOverrides may use.
func Check(expr string) error {
	if _, iss := env.Parse(expr); iss.Err() != nil {
		return fmt.Errorf("invalid CEL expression %q: %w", expr, iss.Err())
	}
	return nil
}
