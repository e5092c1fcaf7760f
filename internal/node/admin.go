package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// adminTimeout bounds each node's answer to an admin call; a node that takes
// longer is listed as unreachable.
const adminTimeout = 2 * time.Second

// adminBacklogCap caps the per-member backlog count of GET /admin/conversations.
const adminBacklogCap = 10_000

// adminStore is what the admin endpoint reads from the store.
type adminStore interface {
	UserStored(ctx context.Context, user string) (persistence.UserStored, error)
	UsersExist(ctx context.Context, ids []string) (map[string]bool, error)
	MemberBacklogs(ctx context.Context, conv string, members []string, upTo int) ([]persistence.MemberBacklog, error)
}

// admin serves the cluster-wide admin calls of docs/ADMIN.md: any node answers
// for the whole cluster by asking every member's admin actor, and reads a grain's
// state through the grain where one is active, else from the store.
type admin struct {
	deps  *actors.Deps
	store adminStore
}

//go:embed console
var consoleFiles embed.FS

// adminMux serves the admin endpoint: the cluster calls of docs/ADMIN.md (when a
// is not nil), its console at /admin/, the node's metrics in Prometheus text format
// (GET /metrics), and, with cfg.Pprof, Go's profiles under /debug/pprof/. With a
// token set, every call but GET /healthz and the console's static files needs it
// as a bearer token in the Authorization header.
func adminMux(cfg config.Admin, a *admin, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		mux.Handle("GET /metrics", m.Handler())
	}
	if a != nil {
		mux.HandleFunc("GET /admin/cluster", a.cluster)
		mux.HandleFunc("GET /admin/grains", a.grains)
		mux.HandleFunc("GET /admin/members", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, map[string]any{"members": a.deps.Topology.Members()})
		})
		mux.HandleFunc("GET /admin/users/{id}", a.user)
		mux.HandleFunc("POST /admin/users/{id}/disconnect", a.disconnect)
		mux.HandleFunc("GET /admin/conversations/{id}", a.conversation)
		mux.HandleFunc("POST /admin/grains/{kind}/{id}/passivate", a.passivate)
	}
	if cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	guarded := sameSite(cfg.Token == "", requireToken(cfg.Token, mux))
	outer := http.NewServeMux()
	outer.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	// The console's page and script hold no data: they load without the token and
	// ask the operator for it, then send it with each call.
	console, _ := fs.Sub(consoleFiles, "console")
	static := http.StripPrefix("/admin/", http.FileServerFS(console))
	outer.Handle("GET /admin/{$}", consoleHeaders(static))
	outer.Handle("GET /admin/console.js", consoleHeaders(static))
	outer.Handle("GET /admin/console.css", consoleHeaders(static))
	outer.Handle("/", guarded)
	return outer
}

// consoleHeaders keeps the console to its own files: no inline script, no frames.
func consoleHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// kindOf maps the endpoint's kind names to the grains' ("": every kind; ok false:
// no such kind).
func kindOf(s string) (string, bool) {
	switch strings.ToLower(s) {
	case "":
		return "", true
	case "user":
		return actors.KindUser, true
	case "conversation":
		return actors.KindConversation, true
	}
	return "", false
}

func kindName(kind string) string { return strings.ToLower(kind) }

type memberJSON struct {
	ID            string         `json:"id"`
	Address       string         `json:"address"`
	Kinds         []string       `json:"kinds"`
	Status        string         `json:"status"`
	Self          bool           `json:"self"`
	NodeID        *int32         `json:"nodeId,omitempty"` // absent when unreachable
	HTTP          string         `json:"http,omitempty"`
	Admin         string         `json:"admin,omitempty"`
	StartedAt     *time.Time     `json:"startedAt,omitempty"`
	UptimeSeconds int64          `json:"uptimeSeconds,omitempty"`
	Version       string         `json:"version,omitempty"`
	Grains        map[string]int `json:"grains,omitempty"`
	Connections   int            `json:"connections"`
}

// self is this node's member id as the cluster's members list names it (a
// provider may name members otherwise than the actor system's id): the member at
// this node's address.
func (a *admin) self() string {
	sys := a.deps.Cluster.ActorSystem
	for _, m := range a.deps.Topology.Members() {
		if m.Address == sys.Address() {
			return m.ID
		}
	}
	return sys.ID
}

func (a *admin) cluster(w http.ResponseWriter, _ *http.Request) {
	self := a.self()
	var out []memberJSON
	for _, ans := range actors.AdminAsk(a.deps, adminTimeout, &parleypb.AdminNodeRequest{}) {
		m := memberJSON{ID: ans.Member.ID, Address: ans.Member.Address, Kinds: kindNames(ans.Member.Kinds),
			Status: "up", Self: ans.Member.ID == self}
		r, ok := ans.Resp.(*parleypb.AdminNodeResponse)
		if !ok {
			m.Status = "unreachable"
			out = append(out, m)
			continue
		}
		started := time.UnixMilli(r.StartedAt).UTC()
		m.NodeID, m.HTTP, m.Admin, m.StartedAt, m.Version = &r.NodeId, r.Http, r.Admin, &started, r.Version
		m.UptimeSeconds = int64(time.Since(started).Seconds())
		m.Grains = map[string]int{}
		for k, n := range r.Grains {
			m.Grains[kindName(k)] = int(n)
		}
		m.Connections = int(r.Connections)
		out = append(out, m)
	}
	writeJSON(w, map[string]any{"cluster": a.deps.Cluster.Config.Name, "self": self, "members": out})
}

func kindNames(kinds []string) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = kindName(k)
	}
	return out
}

type grainJSON struct {
	Grain       string    `json:"grain"` // "User/alice": the kind as the cluster names it, and the id
	Kind        string    `json:"kind"`
	ID          string    `json:"id"`
	Member      string    `json:"member"`
	NodeID      int32     `json:"nodeId"`
	ActivatedAt time.Time `json:"activatedAt"`
	Mailbox     int32     `json:"mailbox"`
}

const (
	grainsDefault = 1000
	grainsMax     = 10_000
)

func (a *admin) grains(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, ok := kindOf(q.Get("kind"))
	if !ok {
		badRequest(w, "kind must be user or conversation")
		return
	}
	limit := grainsDefault
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > grainsMax {
			badRequest(w, "limit must be 1 to "+strconv.Itoa(grainsMax))
			return
		}
		limit = n
	}
	node := q.Get("node")
	if node == "self" {
		node = a.self()
	}
	req := &parleypb.AdminNodeRequest{List: true, Kind: kind, Limit: int32(limit)}
	out, unreachable, truncated := []grainJSON{}, []string{}, false
	for _, ans := range actors.AdminAsk(a.deps, adminTimeout, req) {
		resp, ok := ans.Resp.(*parleypb.AdminNodeResponse)
		if node != "" && node != ans.Member.ID && (!ok || node != strconv.Itoa(int(resp.NodeId))) {
			continue
		}
		if !ok {
			unreachable = append(unreachable, ans.Member.ID)
			continue
		}
		truncated = truncated || resp.Truncated
		for _, g := range resp.List {
			out = append(out, grainJSON{Grain: g.Kind + "/" + g.Id, Kind: kindName(g.Kind), ID: g.Id, Member: ans.Member.ID, NodeID: resp.NodeId,
				ActivatedAt: time.UnixMilli(g.ActivatedAt).UTC(), Mailbox: g.Mailbox})
		}
	}
	slices.SortFunc(out, func(x, y grainJSON) int {
		if c := strings.Compare(x.Kind, y.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(x.ID, y.ID); c != 0 {
			return c
		}
		return strings.Compare(x.Member, y.Member)
	})
	if len(out) > limit {
		out, truncated = out[:limit], true
	}
	writeJSON(w, map[string]any{"grains": out, "truncated": truncated, "unreachable": unreachable})
}

// activation is where a grain is active, found by asking every member.
type activation struct {
	grain  *parleypb.AdminGrain
	member actors.Member
	nodeID int32
}

// found is what every member said of a grain.
type found struct {
	at          []activation // Proto.Actor does not guarantee a single one (research/protoactor.md §3)
	unreachable []string     // the members that did not answer
	answers     []actors.AdminAnswer
}

// find asks every member whether it holds the grain (and, with conns, for its
// connections of that user).
func (a *admin) find(kind, id string, conns bool) found {
	f := found{unreachable: []string{}}
	f.answers = actors.AdminAsk(a.deps, adminTimeout, &parleypb.AdminFindRequest{Kind: kind, Id: id, Conns: conns})
	for _, ans := range f.answers {
		r, ok := ans.Resp.(*parleypb.AdminFindResponse)
		switch {
		case !ok:
			f.unreachable = append(f.unreachable, ans.Member.ID)
		case r.Grain != nil:
			f.at = append(f.at, activation{grain: r.Grain, member: ans.Member, nodeID: r.NodeId})
		}
	}
	return f
}

// where is the activation part of an answer.
type where struct {
	Active      bool       `json:"active"`
	Member      string     `json:"member,omitempty"`
	NodeID      *int32     `json:"nodeId,omitempty"`
	Address     string     `json:"address,omitempty"`
	ActivatedAt *time.Time `json:"activatedAt,omitempty"`
	Mailbox     *int32     `json:"mailbox,omitempty"`
	// Activations is set when more than one node holds the grain (a split
	// activation while the members' views disagree).
	Activations int      `json:"activations,omitempty"`
	Unreachable []string `json:"unreachable"`
}

func whereOf(fd found) where {
	w := where{Unreachable: fd.unreachable}
	if len(fd.at) == 0 {
		return w
	}
	f := fd.at[0]
	at := time.UnixMilli(f.grain.ActivatedAt).UTC()
	w.Active, w.Member, w.NodeID, w.Address, w.ActivatedAt, w.Mailbox = true, f.member.ID, &f.nodeID, f.member.Address, &at, &f.grain.Mailbox
	if len(fd.at) > 1 {
		w.Activations = len(fd.at)
	}
	return w
}

type deviceJSON struct {
	Device    string    `json:"device"`
	Cursor    uint64    `json:"cursor"`
	Push      string    `json:"push,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

type connJSON struct {
	Device   string    `json:"device"`
	Member   string    `json:"member"`
	NodeID   int32     `json:"nodeId"`
	Address  string    `json:"address"`
	Since    time.Time `json:"since"`
	Attached bool      `json:"attached"` // the user grain counts it among its connections
}

type presenceJSON struct {
	Status   string     `json:"status"`
	LastSeen *time.Time `json:"lastSeen,omitempty"`
	Watchers int32      `json:"watchers"`
}

func (a *admin) user(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	stored, err := a.store.UserStored(r.Context(), id)
	if err != nil {
		storeError(w, err, "no such user")
		return
	}
	fd := a.find(actors.KindUser, id, true)
	out := struct {
		User string `json:"user"`
		where
		QueueHead     uint64       `json:"queueHead"`
		Devices       []deviceJSON `json:"devices"`
		Connections   []connJSON   `json:"connections"`
		Presence      presenceJSON `json:"presence"`
		Contacts      int          `json:"contacts"`
		PendingPushes int          `json:"pendingPushes"`
	}{User: id, where: whereOf(fd), QueueHead: stored.QueueHead, Devices: []deviceJSON{},
		Connections: []connJSON{}, Contacts: stored.Contacts, PendingPushes: stored.PendingPushes}
	for _, d := range stored.Devices {
		out.Devices = append(out.Devices, deviceJSON{Device: d.ID, Cursor: d.Cursor, Push: d.PushProvider, CreatedAt: d.CreatedAt})
	}
	out.Presence = presenceJSON{Status: "offline", LastSeen: millis(stored.LastSeen)}
	var attached []*actor.PID
	if len(fd.at) > 0 {
		if st, err := actors.AdminState(a.deps, fd.at[0].grain.Pid, adminTimeout); err == nil {
			if s, ok := st.(*parleypb.AdminUserState); ok {
				attached = s.Conns
				out.Presence.Status, out.Presence.Watchers = s.Status, s.Watchers
				if s.LastSeen > 0 {
					out.Presence.LastSeen = millis(max(s.LastSeen, stored.LastSeen))
				}
			}
		} else { // stopped between the two calls
			out.where = where{Unreachable: fd.unreachable}
		}
	}
	for _, ans := range fd.answers {
		resp, ok := ans.Resp.(*parleypb.AdminFindResponse)
		if !ok {
			continue // unreachable: a connection there is unknown
		}
		for _, c := range resp.Conns {
			out.Connections = append(out.Connections, connJSON{Device: c.Device, Member: ans.Member.ID, NodeID: resp.NodeId,
				Address: ans.Member.Address, Since: time.UnixMilli(c.Since).UTC(),
				Attached: slices.ContainsFunc(attached, func(p *actor.PID) bool { return p.Equal(c.Pid) })})
		}
	}
	writeJSON(w, out)
}

func millis(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := time.UnixMilli(ms).UTC()
	return &t
}

// receiptsJSON are a conversation's group-wide watermarks: the lowest over its
// members.
type receiptsJSON struct {
	DeliveredToAll string `json:"deliveredToAll"`
	ReadByAll      string `json:"readByAll"`
}

type memberStateJSON struct {
	User      string `json:"user"`
	Delivered string `json:"delivered"`
	Read      string `json:"read"`
	Backlog   int    `json:"backlog"`
}

func (a *admin) conversation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := convid.Parse(id); err != nil {
		badRequest(w, "not a conversation id (dm:a:b, group:ID or channel:ID)")
		return
	}
	fd := a.find(actors.KindConversation, id, false)
	var state *parleypb.AdminConversationState
	wh := whereOf(fd)
	if len(fd.at) > 0 {
		st, err := actors.AdminState(a.deps, fd.at[0].grain.Pid, adminTimeout)
		state, _ = st.(*parleypb.AdminConversationState)
		if err != nil || state == nil {
			wh = where{Unreachable: fd.unreachable}
		}
	}
	if state == nil {
		s, err := actors.StoredConversation(r.Context(), a.deps, id)
		if err != nil {
			storeError(w, err, "no such conversation")
			return
		}
		state = s
	}
	out := struct {
		Conversation string `json:"conversation"`
		Type         string `json:"type"`
		where
		LastMessageID string            `json:"lastMessageId"`
		Version       uint64            `json:"version"`
		SnapshotAge   *string           `json:"snapshotAge"`
		Members       []memberStateJSON `json:"members,omitempty"`
		MemberCount   int64             `json:"memberCount"`
		Pending       int32             `json:"pending"`
		Receipts      *receiptsJSON     `json:"receipts,omitempty"`
	}{Conversation: id, Type: state.Type, where: wh, LastMessageID: idString(state.LastMessageId),
		Version: state.Version, MemberCount: state.MemberCount, Pending: state.Pending}
	if len(state.Members) > 0 {
		backlogs, err := a.store.MemberBacklogs(r.Context(), id, state.Members, adminBacklogCap)
		if err != nil {
			storeError(w, err, "no such conversation")
			return
		}
		var delivered, read int64 = -1, -1
		for _, b := range backlogs {
			out.Members = append(out.Members, memberStateJSON{User: b.User, Delivered: idString(b.Delivered),
				Read: idString(b.Read), Backlog: b.Backlog})
			if delivered < 0 || b.Delivered < delivered {
				delivered = b.Delivered
			}
			if read < 0 || b.Read < read {
				read = b.Read
			}
		}
		out.Receipts = &receiptsJSON{DeliveredToAll: idString(max(delivered, 0)), ReadByAll: idString(max(read, 0))}
	}
	writeJSON(w, out)
}

// idString writes a message id as PROTOCOL.md does (a decimal string; "0": none).
func idString(id int64) string { return strconv.FormatInt(id, 10) }

func (a *admin) disconnect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch exist, err := a.store.UsersExist(r.Context(), []string{id}); {
	case err != nil:
		storeError(w, err, "no such user")
		return
	case !exist[id]:
		storeError(w, persistence.ErrNotFound, "no such user")
		return
	}
	closed, unreachable := 0, []string{}
	for _, ans := range actors.AdminAsk(a.deps, adminTimeout, &parleypb.AdminConnsRequest{User: id, Close: true}) {
		if resp, ok := ans.Resp.(*parleypb.AdminConnsResponse); ok {
			closed += len(resp.Conns)
		} else {
			unreachable = append(unreachable, ans.Member.ID)
		}
	}
	writeJSON(w, map[string]any{"closed": closed, "unreachable": unreachable})
}

func (a *admin) passivate(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(r.PathValue("kind"))
	if !ok || kind == "" {
		badRequest(w, "kind must be user or conversation")
		return
	}
	passivated, unreachable := false, []string{}
	req := &parleypb.AdminPassivateRequest{Kind: kind, Id: r.PathValue("id")}
	for _, ans := range actors.AdminAsk(a.deps, adminTimeout, req) {
		if resp, ok := ans.Resp.(*parleypb.AdminPassivateResponse); ok {
			passivated = passivated || resp.Passivated
		} else {
			unreachable = append(unreachable, ans.Member.ID)
		}
	}
	writeJSON(w, map[string]any{"passivated": passivated, "unreachable": unreachable})
}

func badRequest(w http.ResponseWriter, msg string) {
	api.WriteError(w, http.StatusBadRequest, parleypb.ErrorReason_BAD_REQUEST.Code(), msg)
}

func storeError(w http.ResponseWriter, err error, notFound string) {
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		api.WriteError(w, http.StatusNotFound, parleypb.ErrorReason_NOT_FOUND.Code(), notFound)
	case errors.Is(err, persistence.ErrUnavailable):
		api.WriteError(w, http.StatusServiceUnavailable, parleypb.ErrorReason_UNAVAILABLE.Code(), "store unavailable")
	default:
		api.WriteError(w, http.StatusInternalServerError, parleypb.ErrorReason_INTERNAL.Code(), "store error")
	}
}

// buildVersion names the running build: the module version, or the VCS revision
// it was built from (with "-dirty" for uncommitted changes).
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev != "" && (v == "" || v == "(devel)") {
		return rev[:min(12, len(rev))] + dirty
	}
	if v == "" {
		return "(devel)"
	}
	return v
}

// sameSite refuses what a web page the operator has open could make a browser
// send to the admin endpoint: a POST from another site (no preflight guards a
// bodiless POST), and, when no token guards the endpoint (loopback only), any
// request whose Host is not an IP address or localhost, which is what a DNS
// rebinding attack sends (a page of evil.example whose name now points at
// 127.0.0.1). The CLI and scripts send neither Origin nor Sec-Fetch-Site.
func sameSite(checkHost bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if checkHost && !loopbackHost(r.Host) {
			api.WriteError(w, http.StatusForbidden, parleypb.ErrorReason_FORBIDDEN.Code(),
				"the admin endpoint answers only to an IP address or localhost without admin.token")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && crossSite(r) {
			api.WriteError(w, http.StatusForbidden, parleypb.ErrorReason_FORBIDDEN.Code(), "cross-site request refused")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names an IP address or localhost.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return host == "localhost" || net.ParseIP(host) != nil
}

// crossSite reports whether a browser says the request comes from another origin.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err != nil || u.Host != r.Host
	}
	return false
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
