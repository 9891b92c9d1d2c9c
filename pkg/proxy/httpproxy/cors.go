package httpproxy

import (
	"math/rand/v2"
	"net/http"

	"github.com/sluice-mesh/sluice/pkg/proxy/router"
)

// CORS header names.
const (
	hdrOrigin                     = "Origin"
	hdrRequestMethod              = "Access-Control-Request-Method"
	hdrRequestHeaders             = "Access-Control-Request-Headers"
	hdrRequestPrivateNetwork      = "Access-Control-Request-Private-Network"
	hdrAllowOrigin                = "Access-Control-Allow-Origin"
	hdrAllowCredentials           = "Access-Control-Allow-Credentials"
	hdrAllowMethods               = "Access-Control-Allow-Methods"
	hdrAllowHeaders               = "Access-Control-Allow-Headers"
	hdrAllowPrivateNetwork        = "Access-Control-Allow-Private-Network"
	hdrMaxAge                     = "Access-Control-Max-Age"
	hdrExposeHeaders              = "Access-Control-Expose-Headers"
	corsPreflightReason           = "cors preflight answered by the proxy"
	corsPreflightNotAllowedReason = "cors preflight from an origin not allowed, answered by the proxy"
)

// applyCors runs a route's CORS policy where Envoy's CORS filter sits in
// the chain. Only a request with an Origin is looked at (Envoy's rules):
//
//   - A preflight (OPTIONS with Access-Control-Request-Method) from an
//     allowed origin is answered 200 by the proxy with
//     Access-Control-Allow-Origin (the request's Origin), -Allow-Credentials
//     (when allowed), -Allow-Methods and -Allow-Headers (a configured "*"
//     echoes the request's Access-Control-Request-Method / -Headers),
//     -Max-Age and -Expose-Headers. From an origin not allowed it is
//     forwarded (forward_not_matching_preflights, the default) or answered
//     200 with the same headers but no -Allow-Origin and -Expose-Headers.
//   - Any other request is forwarded; when its origin is allowed, whatever
//     answer it gets (the upstream's, or the proxy's own: redirect, direct
//     response, 503, ...) gets Access-Control-Allow-Origin, -Allow-Credentials
//     and -Expose-Headers, replacing the upstream's.
//
// Envoy adds no Vary header and neither does sluice. It returns the writer
// the rest of the request path answers through, and whether the request
// has been answered.
func (h *Handler) applyCors(w http.ResponseWriter, r *http.Request, rte *router.Route, info *RequestInfo) (http.ResponseWriter, bool) {
	origin := firstHeader(r.Header, hdrOrigin)
	if origin == "" {
		return w, false
	}
	p := rte.Cors
	enabled := sampled(p.Enabled)
	if !enabled && !sampled(p.Shadow) {
		return w, false
	}
	allowed := p.OriginAllowed(origin)
	ls := h.stats.Listener(info.statPrefix)
	if allowed {
		ls.CorsOriginValid.Add(1)
	} else {
		ls.CorsOriginInvalid.Add(1)
	}
	if !enabled {
		return w, false // shadow mode: evaluated and counted only
	}
	reqMethod := firstHeader(r.Header, hdrRequestMethod)
	if r.Method != http.MethodOptions || reqMethod == "" {
		if !allowed {
			return w, false
		}
		return &corsWriter{ResponseWriter: w, origin: origin, policy: p}, false
	}
	if !allowed && p.ForwardNotMatchingPreflights {
		return w, false
	}
	h.answerPreflight(w, r, p, origin, reqMethod, allowed, info)
	return w, true
}

// answerPreflight is Envoy's answer to a preflight: 200, no body, the
// allow-* headers, and then what the filter adds to every answer of an
// allowed origin (its encoder runs over its own reply).
func (h *Handler) answerPreflight(w http.ResponseWriter, r *http.Request, p *router.CorsPolicy, origin, reqMethod string, allowed bool, info *RequestInfo) {
	hdr := w.Header()
	if allowed {
		hdr.Set(hdrAllowOrigin, origin)
	}
	if p.AllowCredentials {
		hdr.Set(hdrAllowCredentials, "true")
	}
	switch p.AllowMethods {
	case "":
	case "*":
		hdr.Set(hdrAllowMethods, reqMethod)
	default:
		hdr.Set(hdrAllowMethods, p.AllowMethods)
	}
	switch p.AllowHeaders {
	case "":
	case "*":
		// Envoy echoes the request's list, an empty header when there is
		// none; sluice leaves it out then (the Gateway API requires that,
		// and a browser reads both the same).
		if v := firstHeader(r.Header, hdrRequestHeaders); v != "" {
			hdr.Set(hdrAllowHeaders, v)
		}
	default:
		hdr.Set(hdrAllowHeaders, p.AllowHeaders)
	}
	if p.MaxAge != "" {
		hdr.Set(hdrMaxAge, p.MaxAge)
	}
	if p.AllowPrivateNetworkAccess && firstHeader(r.Header, hdrRequestPrivateNetwork) == "true" {
		hdr.Set(hdrAllowPrivateNetwork, "true")
	}
	reason := corsPreflightReason
	if allowed {
		if p.ExposeHeaders != "" {
			hdr.Set(hdrExposeHeaders, p.ExposeHeaders)
		}
	} else {
		reason = corsPreflightNotAllowedReason
	}
	hdr.Set("X-Sluice-Reason", reason+": route "+info.Route)
	hdr.Set("Content-Length", "0")
	info.Status = http.StatusOK
	w.WriteHeader(http.StatusOK)
}

// corsWriter adds the CORS headers of an allowed origin to the answer,
// whoever makes it, just before its headers are sent.
type corsWriter struct {
	http.ResponseWriter
	origin string
	policy *router.CorsPolicy
	done   bool
}

func (c *corsWriter) addHeaders() {
	if c.done {
		return
	}
	c.done = true
	hdr := c.ResponseWriter.Header()
	hdr.Set(hdrAllowOrigin, c.origin)
	if c.policy.AllowCredentials {
		hdr.Set(hdrAllowCredentials, "true")
	}
	if c.policy.ExposeHeaders != "" {
		hdr.Set(hdrExposeHeaders, c.policy.ExposeHeaders)
	}
}

func (c *corsWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		c.addHeaders() // informational answers pass untouched, as in Envoy
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *corsWriter) Write(b []byte) (int, error) {
	c.addHeaders()
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (c *corsWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// firstHeader is a header's first value; name must be canonical (no
// canonicalisation on the request path).
func firstHeader(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// sampled reports whether a request falls in f (no random number for the
// usual 0% and 100%).
func sampled(f router.Fraction) bool {
	switch {
	case f.Numerator == 0:
		return false
	case f.Numerator >= f.Denominator:
		return true
	}
	return f.Sample(rand.Uint64())
}
