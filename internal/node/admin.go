package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/metrics"
)

// adminMux serves the admin endpoint: the grains active on this node, the cluster's
// members, the node's metrics in Prometheus text format (GET /metrics), and Go's
// profiles under /debug/pprof/ (heap, goroutine, CPU profile, ...). With a token set,
// every call needs it as a bearer token.
func adminMux(token string, deps *actors.Deps, m *metrics.Metrics) http.Handler {
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
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if token == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if api.BearerToken(r) != token {
			api.WriteError(w, http.StatusUnauthorized, "unauthorized", "admin token required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
