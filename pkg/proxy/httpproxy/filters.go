package httpproxy

import (
	"net/http"
	"net/url"

	"github.com/sluice-mesh/sluice/pkg/proxy/dataplane"
	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
	"github.com/sluice-mesh/sluice/pkg/proxy/pathnorm"
	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// runFilters runs the chain's http_filters in the order the connection
// manager listed them, as Envoy's filter manager does: each filter is one
// package under pkg/proxy/filters with its per-route config (compiled with
// the route) and its Decode; the router, always last, answers. A filter
// that answers ends the chain.
func runFilters(s *httpfilter.Stream, chain *dataplane.FilterChain) {
	for _, f := range chain.HTTPFilters {
		if f.Decode(s) == httpfilter.Answered {
			return
		}
	}
}

// normalizePath applies the chain's path normalization
// (ConnectionManagerUtility::maybeNormalizePath in Envoy) before routing,
// so routing, authorization and the app all see the normalized path. It
// returns the path to route on, or false when the request was answered:
// 400 for a path Envoy rejects, 307 to the unescaped path for
// UNESCAPE_AND_REDIRECT (400 for gRPC, as Envoy).
func (h *Handler) normalizePath(w http.ResponseWriter, r *http.Request, chain *dataplane.FilterChain, info *httpfilter.RequestInfo) (string, bool) {
	path := router.RequestPath(r)
	if path == "*" {
		return path, true // OPTIONS *
	}
	np, res := chain.Path.Apply(path)
	switch {
	case res == pathnorm.Reject || res == pathnorm.Redirect && isGRPC(r):
		w.Header().Set("Connection", "close")
		h.localReply(w, info, http.StatusBadRequest, 0, "invalid path: path normalization failed")
		return "", false
	case res == pathnorm.Redirect:
		loc := np
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		w.Header().Set("Location", loc)
		h.localReply(w, info, http.StatusTemporaryRedirect, 0, "path with escaped slashes redirected to its unescaped form")
		return "", false
	}
	if np != path {
		setPath(r, np)
	}
	return np, true
}

// setPath makes p (escaped, without the query) the request's path, so the
// upstream request, mirrors and rewrites carry it.
func setPath(r *http.Request, p string) {
	if r.URL.RawQuery != "" {
		r.RequestURI = p + "?" + r.URL.RawQuery
	} else {
		r.RequestURI = p
	}
	if u, err := url.PathUnescape(p); err == nil {
		r.URL.Path, r.URL.RawPath = u, p
	} else {
		r.URL.Path, r.URL.RawPath = p, ""
	}
}

// firstHeader is a header's first value (see httpfilter.FirstHeader).
func firstHeader(h http.Header, name string) string { return httpfilter.FirstHeader(h, name) }

func isGRPC(r *http.Request) bool {
	ct := firstHeader(r.Header, "Content-Type")
	return len(ct) >= 16 && ct[:16] == "application/grpc"
}
