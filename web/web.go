// Package web is Parley's browser client: static files (HTML, ES modules, CSS, a
// service worker) embedded in the binary and served by the node at "/". It has no
// build step and loads nothing from another origin.
//
// Every answer carries the security headers of [Handler]: a strict
// Content-Security-Policy (same-origin scripts, styles, connections and workers
// only; Trusted Types enforced, so no string can reach an HTML sink), nosniff, no
// referrer and no framing. A path that names no file is a JSON 404 as the REST
// API answers. Handler is safe for concurrent use.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/api"
)

//go:embed static
var static embed.FS

// contentTypes are the types of the files the client has, by extension; a file of
// any other extension is not served.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".svg":         "image/svg+xml",
	".webmanifest": "application/manifest+json",
}

// file is one static file, read once at start.
type file struct {
	body        []byte
	contentType string
	etag        string
}

// hostPattern is a Host header that may be named in the CSP (a name or an IPv4
// or bracketed IPv6 address, with an optional port); any other Host gets only
// 'self'.
var hostPattern = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

// Handler serves the client: "/" is index.html, "/<name>" a file of static/.
// Only GET and HEAD are served (405 otherwise); a path that names no file is 404.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		files[strings.TrimPrefix(p, "static")] = file{body: body, contentType: ct,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: reading the embedded files: " + err.Error()) // only a broken build gets here
	}
	files["/"] = files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header(), r.Host)
		f, ok := files[r.URL.Path]
		switch {
		case !ok:
			api.WriteError(w, http.StatusNotFound, "not_found", "no such file")
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			api.WriteError(w, http.StatusMethodNotAllowed, "bad_request", "method "+r.Method+" not allowed; use GET, HEAD")
		default:
			h := w.Header()
			h.Set("Content-Type", f.contentType)
			h.Set("ETag", f.etag)
			// Revalidate every time: an update of the node is seen at the next load,
			// and an unchanged file costs a 304.
			h.Set("Cache-Control", "no-cache")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
		}
	})
}

// setSecurityHeaders sets the headers of every answer. connect-src names the
// WebSocket of the page's own host besides 'self': CSP Level 3 lets 'self' match
// ws: and wss: of the same host (Chromium and Firefox do), older browsers need
// the scheme spelled out.
func setSecurityHeaders(h http.Header, host string) {
	connect := "'self'"
	if hostPattern.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src "+connect+"; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; "+
		"form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types parley-sw")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
}
