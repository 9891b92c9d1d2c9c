package router

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-mesh/sluice/pkg/proxy/httpfilter"
)

// The router's half of an HTTP/1.1 upgrade the connection manager allowed
// (httpproxy/upgrade.go decides): the upgrade headers go upstream, and a
// 101 answer turns the exchange into a tunnel (after net/http/httputil's
// ReverseProxy.handleUpgradeResponse).

// setUpgradeHeaders puts back the hop-by-hop headers an upgrade needs on
// the upstream request.
func setUpgradeHeaders(out *http.Request, r *http.Request) {
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = r.Header["Upgrade"]
}

// tunnel answers 101 to the client with the upstream's headers and then
// copies bytes both ways until either side closes or ctx (the route
// timeout, the client) ends. The upstream connection is the 101
// response's body, as net/http hands it over.
func tunnel(w http.ResponseWriter, ctx context.Context, res *attemptResult, cfg *Config, info *RequestInfo) {
	resp := res.resp
	back, ok := resp.Body.(io.ReadWriteCloser)
	if rb, isRB := resp.Body.(*releasingBody); isRB {
		back, ok = rb.ReadCloser.(io.ReadWriteCloser)
	}
	defer resp.Body.Close() // releases the host and circuit breaker slot
	if !ok {
		localReply(w, info, http.StatusBadGateway, httpfilter.FlagUPE, "upgrade: upstream connection of cluster "+info.Cluster+" cannot be tunnelled")
		return
	}
	if got := resp.Header.Get("Upgrade"); !strings.EqualFold(got, info.Upgrade) {
		localReply(w, info, http.StatusBadGateway, httpfilter.FlagUPE, "upgrade: upstream switched to protocol \""+got+"\", not "+info.Upgrade)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		localReply(w, info, http.StatusInternalServerError, 0, "upgrade: cannot take over the client connection: "+err.Error())
		return
	}
	defer conn.Close()
	hdr := resp.Header.Clone()
	cfg.RespOps.Apply(hdr)
	stripDecorator(hdr, info)
	info.Status, info.Details = http.StatusSwitchingProtocols, DetailsViaUpstream
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	// brw's reader holds anything the client sent after its request.
	go func() { io.Copy(back, brw); done <- struct{}{} }()
	go func() { io.Copy(conn, back); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Closing both ends stops the other copy (httputil does the same).
	back.Close()
	conn.Close()
	<-done
}
