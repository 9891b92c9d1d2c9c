package serverconn

import (
	"io"
	"net/http"
)

// OptionsHandler answers "OPTIONS *" (the server's own options), as
// net/http's server does unless DisableGeneralOptionsHandler.
var OptionsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		// net/http reads a little of a body here and lets the connection
		// close; so does h1server's unread-body rule.
		io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
})
