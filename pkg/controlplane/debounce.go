package controlplane

import (
	"context"
	"time"
)

// PushRequest says why a push is wanted. Requests arriving close together
// are merged into one push.
type PushRequest struct {
	// Full means config or registry changed: rebuild the push context.
	Full bool
	// Config means the config folder changed on disk: read it again
	// before the push.
	Config bool
	// Reasons are short words for the log ("config", "proxy").
	Reasons []string
	// Start is when the first merged request arrived.
	Start time.Time
}

// Merge folds b into a.
func (a PushRequest) Merge(b PushRequest) PushRequest {
	out := a
	out.Full = a.Full || b.Full
	out.Config = a.Config || b.Config
	out.Reasons = append(append([]string(nil), a.Reasons...), b.Reasons...)
	if out.Start.IsZero() || (!b.Start.IsZero() && b.Start.Before(out.Start)) {
		out.Start = b.Start
	}
	return out
}

// onlyConfig reports whether every reason merged is a config change.
func (a PushRequest) onlyConfig() bool {
	for _, r := range a.Reasons {
		if r != "config" {
			return false
		}
	}
	return true
}

// DebounceOptions: a push fires once no request arrived for Quiet, or
// MaxDelay after the first one, whichever comes first (Istio's
// PILOT_DEBOUNCE_AFTER and PILOT_DEBOUNCE_MAX).
type DebounceOptions struct {
	Quiet    time.Duration
	MaxDelay time.Duration
}

// debounce reads requests from in and calls push with merged requests,
// one push at a time, until ctx ends. It is the only debounce between a
// config edit and a push: the file source sends raw changes. As istiod's
// debounce (istio/istio pilot/pkg/xds/discovery.go, debounce and its
// pushWorker), a push fires when the quiet time since the last request
// reaches Quiet or the time since the first reaches MaxDelay, and
// requests arriving during a push wait for it to finish.
func debounce(ctx context.Context, in <-chan PushRequest, opts DebounceOptions, push func(PushRequest)) {
	var (
		pending *PushRequest
		timer   = time.NewTimer(time.Hour)
		first   time.Time
	)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case req := <-in:
			if req.Start.IsZero() {
				req.Start = time.Now()
			}
			if pending == nil {
				pending = &req
				first = time.Now()
			} else {
				merged := pending.Merge(req)
				pending = &merged
			}
			wait := opts.Quiet
			if left := opts.MaxDelay - time.Since(first); left < wait {
				wait = max(left, 0)
			}
			timer.Reset(wait)
		case <-timer.C:
			if pending != nil {
				req := *pending
				pending = nil
				push(req)
			}
		}
	}
}
