package metrics

import (
	_ "embed"
	"net/http"
	"strings"
)

// page is the live page: one self-contained HTML file, its script and
// style inline, that polls the stats JSON and /metrics of the same server
// and keeps the last minutes in the browser for its charts. It loads
// nothing from elsewhere, so it works on a host with no internet.
//
//go:embed page.html
var page []byte

// pageOrStats answers / with the page to a browser (a request that
// accepts text/html) and with the stats JSON to anything else, as
// twemproxy's stats port answers anything with its JSON.
func pageOrStats(stats http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), "text/html") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			stats.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(page)
	})
}
