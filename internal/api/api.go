package api

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Store is what the API needs of persistence; *postgres.Store satisfies it.
type Store interface {
	CreateUser(ctx context.Context, u persistence.User) error
	User(ctx context.Context, id string) (persistence.User, error)
	// AddDevice registers a device for a session that ends at until (Unix ms).
	AddDevice(ctx context.Context, user, device string, until int64) error
	auth.Devices // token generations, for logout
	History(ctx context.Context, conv string, before, after int64, limit int) ([]*parleypb.Message, bool, error)
	HistoryAfter(ctx context.Context, conv string, after, before int64, limit int) ([]*parleypb.Message, bool, error)
	Receipts(ctx context.Context, conv string) ([]persistence.Watermark, error)
}

// Presence reports a user's live status ("online", "away" or "offline") and
// last-seen time (Unix ms).
type Presence func(ctx context.Context, user string) (status string, lastSeen int64, err error)

// Options configure an [API]. Store and Signer are required.
type Options struct {
	Store  Store
	Signer *auth.Signer
	// Sessions issues, verifies and revokes tokens. Nil means Sessions of Signer
	// and Store with the default cache. (The node shares its Sessions with the
	// WebSocket upgrade, so that a logout here is seen there at once.)
	Sessions *auth.Sessions
	// Presence gives live status. Nil (or an error from it) means "offline"
	// with the stored last-seen time.
	Presence Presence
	// Groups runs group operations; nil serves no groups.
	Groups Groups
	// Channels runs channel operations and ChannelStore reads channels; with
	// either nil no channel is served.
	Channels     Channels
	ChannelStore ChannelStore
	// Contacts keeps contacts and presence settings; nil serves neither (and
	// shows every user's presence to everyone).
	Contacts Contacts
	// SettingsChanged is called after a user's presence setting changed, so that
	// its watchers see what they may now; nil tells no one.
	SettingsChanged func(user string)
	// ContactsChanged is called after a user added or removed a contact, so that
	// it watches (or stops watching) that contact's presence live, and the users
	// it shows its presence to under the "contacts" setting are reloaded; nil tells
	// no one (until the user's next connection).
	ContactsChanged func(user, contact string, added bool)
	// LoggedOut is called after a device logged out, to close its live
	// connections; nil closes none (they end when their socket does).
	LoggedOut func(user, device string)
	// Push keeps devices' push targets and conversations' mute settings; nil
	// serves neither.
	Push PushStore
	// PushCheck refuses a push registration this node cannot serve (a provider
	// not configured, a token of the wrong shape); nil accepts none.
	PushCheck func(provider, token string) error
	// Limits bounds history pages. Zero HistoryDefault and HistoryMax take the
	// defaults of [config.Default].
	Limits config.Limits
	// Hasher runs bcrypt, a bounded number at once. Nil means one of BcryptCost
	// and GOMAXPROCS slots.
	Hasher *auth.Hasher
	// BcryptCost is the work factor of new password hashes when Hasher is nil.
	// Zero means the default of [config.Default].
	BcryptCost int
	// Throttle limits logins and sign-ups; the zero value limits nothing.
	Throttle Throttle
	// Log receives internal errors. Nil means [slog.Default].
	Log *slog.Logger
}

// API holds the REST handlers. Create it with [New].
type API struct {
	store         Store
	sessions      *auth.Sessions
	presence      Presence
	groups        Groups
	channels      Channels
	channelStore  ChannelStore
	contacts      Contacts
	changed       func(user string)
	contactsMoved func(user, contact string, added bool)
	loggedOut     func(user, device string)
	push          PushStore
	pushCheck     func(provider, token string) error
	signer        *auth.Signer
	limits        config.Limits
	hasher        *auth.Hasher
	throttles     throttles
	log           *slog.Logger
}

// New returns an API; it panics if o.Store or o.Signer is nil, or if o.Hasher
// is nil and o.BcryptCost is out of range.
func New(o Options) *API {
	if o.Store == nil || o.Signer == nil {
		panic("api: New needs a Store and a Signer")
	}
	def := config.Default()
	if o.Limits.HistoryMax <= 0 {
		o.Limits.HistoryMax = def.Limits.HistoryMax
	}
	if o.Limits.HistoryDefault <= 0 || o.Limits.HistoryDefault > o.Limits.HistoryMax {
		o.Limits.HistoryDefault = min(def.Limits.HistoryDefault, o.Limits.HistoryMax)
	}
	if o.BcryptCost == 0 {
		o.BcryptCost = def.Auth.BcryptCost
	}
	if o.Hasher == nil {
		h, err := auth.NewHasher(o.BcryptCost, 0)
		if err != nil {
			panic("api: " + err.Error())
		}
		o.Hasher = h
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Sessions == nil {
		o.Sessions = auth.NewSessions(o.Signer, o.Store, auth.SessionsConfig{})
	}
	if o.Limits.ChannelsPerUser <= 0 {
		o.Limits.ChannelsPerUser = def.Limits.ChannelsPerUser
	}
	if o.Limits.ChannelUnreadMax <= 0 {
		o.Limits.ChannelUnreadMax = def.Limits.ChannelUnreadMax
	}
	return &API{store: o.Store, sessions: o.Sessions, presence: o.Presence, groups: o.Groups, channels: o.Channels,
		channelStore: o.ChannelStore, contacts: o.Contacts, changed: o.SettingsChanged, contactsMoved: o.ContactsChanged, limits: o.Limits,
		loggedOut: o.LoggedOut, push: o.Push, pushCheck: o.PushCheck, signer: o.Signer, hasher: o.Hasher, throttles: newThrottles(o.Throttle), log: o.Log}
}

// Register adds the routes of the API to mux. A known path asked with another
// method is answered 405 with a JSON error.
func (a *API) Register(mux *http.ServeMux) {
	a.route(mux, "/v1/users", map[string]http.HandlerFunc{
		http.MethodPost: a.createUser,
	})
	a.route(mux, "/v1/sessions", map[string]http.HandlerFunc{
		http.MethodPost: a.createSession,
	})
	a.route(mux, "/v1/sessions/current", map[string]http.HandlerFunc{
		http.MethodDelete: a.authed(a.deleteSession),
	})
	a.route(mux, "/v1/users/{id}", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.getUser),
	})
	a.route(mux, "/v1/conversations/{id}/messages", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.history),
	})
	a.route(mux, "/v1/conversations/{id}/receipts", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.receipts),
	})
	a.route(mux, "/v1/groups", map[string]http.HandlerFunc{
		http.MethodPost: a.authed(a.createGroup),
	})
	a.route(mux, "/v1/groups/{id}", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.getGroup),
	})
	a.route(mux, "/v1/groups/{id}/members", map[string]http.HandlerFunc{
		http.MethodPost: a.authed(a.addMember),
	})
	a.route(mux, "/v1/groups/{id}/members/{user}", map[string]http.HandlerFunc{
		http.MethodDelete: a.authed(a.removeMember),
	})
	a.registerChannels(mux)
	if a.push != nil {
		a.route(mux, "/v1/devices/{device}/push", map[string]http.HandlerFunc{
			http.MethodPut:    a.authed(a.putPush),
			http.MethodDelete: a.authed(a.deletePush),
		})
		a.route(mux, "/v1/conversations/{id}/settings", map[string]http.HandlerFunc{
			http.MethodGet: a.authed(a.getConversationSettings),
			http.MethodPut: a.authed(a.putConversationSettings),
		})
	}
	if a.contacts != nil {
		a.route(mux, "/v1/contacts", map[string]http.HandlerFunc{
			http.MethodGet: a.authed(a.listContacts),
		})
		a.route(mux, "/v1/contacts/{id}", map[string]http.HandlerFunc{
			http.MethodPut:    a.authed(a.putContact),
			http.MethodDelete: a.authed(a.deleteContact),
		})
		a.route(mux, "/v1/me/settings", map[string]http.HandlerFunc{
			http.MethodGet: a.authed(a.getSettings),
			http.MethodPut: a.authed(a.putSettings),
		})
	}
}

// route registers "METHOD path" for each handler, and path alone for every
// other method, answering 405.
func (a *API) route(mux *http.ServeMux, path string, handlers map[string]http.HandlerFunc) {
	allowed := make([]string, 0, len(handlers)+1)
	for method, h := range handlers {
		mux.HandleFunc(method+" "+path, a.PerAddress(h))
		allowed = append(allowed, method)
		if method == http.MethodGet {
			allowed = append(allowed, http.MethodHead) // GET patterns match HEAD too
		}
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteError(w, http.StatusMethodNotAllowed, parleypb.ErrorReason_BAD_REQUEST.Code(), "method "+r.Method+" not allowed; use "+allow)
	})
}

// authedHandler is a handler that runs for a verified token.
type authedHandler func(w http.ResponseWriter, r *http.Request, claims auth.Claims)

// authed verifies the bearer token before calling h.
func (a *API) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := BearerToken(r)
		if token == "" {
			a.fail(w, r, errorf(parleypb.ErrorReason_UNAUTHORIZED, "missing bearer token"))
			return
		}
		claims, err := a.sessions.Verify(r.Context(), token)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		h(w, r, claims)
	}
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header
// (scheme case-insensitive), else "". The REST API and the admin endpoint take
// tokens from there only: a token in the URL ends up in access logs.
func BearerToken(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(token)
	}
	return ""
}

// UpgradeToken is the token of a WebSocket upgrade, which browsers cannot give
// headers: [BearerToken], or, when the request has no Authorization header at
// all, the ?token= query parameter.
func UpgradeToken(r *http.Request) string {
	if r.Header.Get("Authorization") != "" {
		return BearerToken(r)
	}
	return r.URL.Query().Get("token")
}
