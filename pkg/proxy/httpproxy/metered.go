package httpproxy

import (
	"io"
	"net/http"
	"sync/atomic"

	"github.com/sluice-mesh/sluice/pkg/proxy/accesslog"
	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/istiometrics"
	"github.com/sluice-mesh/sluice/pkg/proxy/tracing"
)

// request is everything the connection manager keeps for one request, in
// one allocation: the filters' Stream, the writer and body counting the
// bytes for RequestInfo, the chain serving it, and the access log entry.
type request struct {
	s     httpfilter.Stream
	w     meteredWriter
	body  meteredBody
	chain *dataplane.FilterChain
	entry accesslog.Entry
	// inbound: the request arrived on an inbound listener (the metrics'
	// destination reporter).
	inbound bool
	// reqMsgs and respMsgs count a gRPC request's messages each way when
	// its chain records metrics (the body and writer feed them), and
	// services are the runtime's cluster services.
	reqMsgs, respMsgs istiometrics.GRPCMessages
	services          map[string]*istiometrics.Service
	// span is the request's tracing (tracing.go); spanNamed: its name came
	// from the client's x-envoy-decorator-operation.
	span      tracing.Span
	spanNamed bool
	// requestID backs the x-request-id the connection manager generates.
	requestID [1]string
}

// meteredWriter counts the response body bytes written to the client
// (%BYTES_SENT%). Unwrap lets http.ResponseController reach the server's
// writer (Flush, Hijack).
type meteredWriter struct {
	http.ResponseWriter
	info *httpfilter.RequestInfo
	msgs *istiometrics.GRPCMessages // nil: not counted
}

func (m *meteredWriter) Write(p []byte) (int, error) {
	n, err := m.ResponseWriter.Write(p)
	m.info.BytesSent += uint64(n)
	if m.msgs != nil {
		m.msgs.Feed(p[:n])
	}
	return n, err
}

// Unwrap is the server's ResponseWriter, for http.ResponseController.
func (m *meteredWriter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

// meteredBody counts the request body bytes read from the client
// (%BYTES_RECEIVED%).
type meteredBody struct {
	io.ReadCloser
	info *httpfilter.RequestInfo
	msgs *istiometrics.GRPCMessages // nil: not counted
}

func (m *meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	// The upstream transport may read the body on its own goroutine.
	atomic.AddUint64(&m.info.BytesReceived, uint64(n))
	if m.msgs != nil {
		m.msgs.Feed(p[:n])
	}
	return n, err
}
