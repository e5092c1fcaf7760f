package node

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/metrics"
)

// adminMux serves the admin endpoint: the grains active on this node, the cluster's
// members, the node's metrics in Prometheus text format (GET /metrics), and, with
// cfg.Pprof, Go's profiles under /debug/pprof/ (heap, goroutine, CPU profile, ...).
// With a token set, every call but GET /healthz needs it as a bearer token in the
// Authorization header.
func adminMux(cfg config.Admin, deps *actors.Deps, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	mux.HandleFunc("GET /admin/grains", func(w http.ResponseWriter, _ *http.Request) {
		type grain struct {
			ID          string    `json:"id"`
			ActivatedAt time.Time `json:"activatedAt"`
		}
		active := deps.Grains.Snapshot()
		out := make([]grain, 0, len(active))
		for id, at := range active {
			out = append(out, grain{ID: id, ActivatedAt: at})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		writeJSON(w, map[string]any{"grains": out})
	})
	mux.HandleFunc("GET /admin/members", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"members": deps.Topology.Members()})
	})
	if cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	guarded := requireToken(cfg.Token, mux)
	outer := http.NewServeMux()
	outer.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	outer.Handle("/", guarded)
	return outer
}

// requireToken lets through only requests whose bearer token (Authorization
// header; never the URL) is token, compared in constant time; "" lets all through.
func requireToken(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	// Hashing both sides first makes the comparison's time independent of the
	// lengths too.
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(api.BearerToken(r)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			api.WriteError(w, http.StatusUnauthorized, "unauthorized", "admin token required")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
