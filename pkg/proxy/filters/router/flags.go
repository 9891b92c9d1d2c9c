package router

import "github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"

// Flags are the request's response flags (see httpfilter).
type Flags = httpfilter.Flags

// The response flags the router sets.
const (
	FlagUH  = httpfilter.FlagUH
	FlagUT  = httpfilter.FlagUT
	FlagUR  = httpfilter.FlagUR
	FlagUF  = httpfilter.FlagUF
	FlagUC  = httpfilter.FlagUC
	FlagUO  = httpfilter.FlagUO
	FlagNC  = httpfilter.FlagNC
	FlagDC  = httpfilter.FlagDC
	FlagURX = httpfilter.FlagURX
	FlagUPE = httpfilter.FlagUPE
)

// upstreamFailure is an attempt error that says which response flag it
// stands for, for failures decided by cluster policy rather than the
// network. Cluster policy returns one (or an error wrapping one) from an
// attempt; the router answers 503 with the reason, records the flag and
// does not retry it.
type upstreamFailure struct {
	flag   Flags
	reason string
}

func (e *upstreamFailure) Error() string { return e.reason }

// overflowError is the error for a request refused by a circuit breaker
// (response flag UO).
func overflowError(reason string) error { return &upstreamFailure{flag: FlagUO, reason: reason} }
