package actors

import (
	"log/slog"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// A user's presence, kept by its user grain.
//
// The user is online while one of its connections is attached and its device has not
// said away, away while every attached device has, and offline when none is
// attached. Who is online is also a row per user in the store (written when the user
// comes online and when it goes), so that:
//   - a user coming online reads which of the users who added it are online (its
//     watchers) and tells them;
//   - and which of its own contacts are online, and tells each that it watches it
//     (Watch), so that their changes reach it.
//
// No message goes to, and nothing is written for, a watcher that is offline. The
// row is written before those reads, so of two users coming online at once the
// later one's read sees the other. A user whose last connection goes stays shown
// online for Settings.PresenceGrace: a reconnect within it shows watchers nothing.
type presence struct {
	shown     status // the status watchers were last told (unknown: none yet)
	online    bool   // the online row is written (or being written)
	announced bool   // this online period's read of who is online answered: watchers hear changes
	leaving   int32  // > 0: the last connection went; the grace timer's generation
	graces    int32  // grace timers started
	gen       int32  // online rows written or removed, for onlineStored
	peers     *peers // nil until the user has a watcher, a watched contact or an away device
}

// peers is the part of a user's presence that most users (no contacts online, no
// device away) do not need: allocated when first needed, so that an idle
// connection's user grain stays small.
type peers struct {
	away     []*actor.PID        // attached connections whose device said away
	watchers map[string]struct{} // online users who added this one
	watching []string            // online contacts this one told it watches
	rules    *presenceRules      // who may see it; nil until needed
}

// more returns the peers, allocating them.
func (p *presence) more() *peers {
	if p.peers == nil {
		p.peers = &peers{}
	}
	return p.peers
}

// A status as watchers see it.
type status uint8

const (
	unknown status = iota
	statusOnline
	statusAway
	statusOffline
)

func (s status) String() string {
	switch s {
	case statusOnline:
		return "online"
	case statusAway:
		return "away"
	case statusOffline:
		return "offline"
	}
	return ""
}

// presenceRules are who may see a user's presence: its setting, and its own
// contacts (whom "contacts" shows it to).
type presenceRules struct {
	visibility string
	contacts   map[string]struct{}
}

func (r *presenceRules) shows(viewer string) bool {
	_, added := r.contacts[viewer]
	return persistence.Shows(r.visibility, added)
}

// onlineStored continues coming online once the online row is committed.
type onlineStored struct{ gen int32 }

// statusNow is what the user's devices make it now.
func (u *User) statusNow() status {
	switch {
	case len(u.conns) == 0 && u.p.leaving == 0:
		return statusOffline
	case len(u.conns) > 0 && u.p.peers != nil && len(u.p.peers.away) == len(u.conns):
		return statusAway
	}
	return statusOnline
}

// connected follows an attach: the first connection brings the user online (or
// cancels a pending offline, which watchers then never see).
func (u *User) connected(ctx actor.Context) {
	if len(u.conns) != 1 {
		return
	}
	if u.p.online {
		// Back within the grace period: watchers saw nothing, and the row says
		// connected again (which cancels pushes waiting).
		u.p.leaving = 0
		u.deps.Store.SetOnline(u.id, u.deps.Holder, true, nowMillis(), nil)
		u.announce(ctx)
		return
	}
	u.p.online, u.p.announced = true, false
	u.p.gen++
	gen, self, root := u.p.gen, ctx.Self(), u.deps.Cluster.ActorSystem.Root
	u.deps.Store.SetOnline(u.id, u.deps.Holder, true, nowMillis(), func(err error) {
		if err != nil {
			u.deps.Log.Warn("presence: writing online", slog.String("user", u.id), slog.Any("err", err))
		}
		root.Send(self, &onlineStored{gen: gen})
	})
}

// onlineWritten reads the online watchers and contacts, tells the watchers and
// watches the contacts.
func (u *User) onlineWritten(ctx actor.Context, m *onlineStored) {
	if m.gen != u.p.gen || !u.p.online {
		return // offline again meanwhile
	}
	cx, cancel := u.deps.timeout()
	watchers, contacts, err := u.deps.Store.OnlinePeers(cx, u.id)
	cancel()
	if err != nil {
		u.deps.Log.Warn("presence: reading who is online", slog.String("user", u.id), slog.Any("err", err))
	}
	if len(watchers) > 0 || len(contacts) > 0 {
		m := u.p.more()
		if m.watchers == nil && len(watchers) > 0 {
			m.watchers = make(map[string]struct{}, len(watchers))
		}
		for _, w := range watchers {
			m.watchers[w] = struct{}{}
		}
		m.watching = contacts
	}
	for _, c := range contacts {
		u.deps.tell(ctx, c, KindUser, &parleypb.Watch{Watcher: u.id, Watching: true})
	}
	u.p.shown, u.p.announced = unknown, true // everyone found now hears the status
	u.announce(ctx)
}

// disconnected follows a detach: with no connection left the user goes offline
// after the grace period, unless one attaches first.
func (u *User) disconnected(ctx actor.Context) {
	if len(u.conns) > 0 {
		u.announce(ctx) // the away devices may be all that is left
		return
	}
	if !u.p.online || u.p.leaving > 0 {
		return
	}
	u.p.graces++
	u.p.leaving = u.p.graces
	gen := u.p.graces
	after(ctx, u.deps.Settings.PresenceGrace, func() {
		if u.p.leaving == gen {
			u.goOffline(ctx)
		}
	})
}

// goOffline tells the watchers, stops watching, and removes the online row.
func (u *User) goOffline(ctx actor.Context) {
	u.p.leaving = 0
	u.p.online = false
	u.p.gen++
	u.announce(ctx) // nothing if no watcher heard this period's online yet
	u.p.announced = false
	if m := u.p.peers; m != nil {
		for _, c := range m.watching {
			u.deps.tell(ctx, c, KindUser, &parleypb.Watch{Watcher: u.id, Watching: false})
		}
		m.watching, m.watchers = nil, nil
		if len(m.away) == 0 && m.rules == nil {
			u.p.peers = nil
		}
	}
	u.deps.Store.SetOnline(u.id, u.deps.Holder, false, 0, nil)
}

// watch adds or removes a watcher; a new one hears the current status at once (if
// the user is not offline and shows it to that watcher), once: a watcher found by
// both the user's read and its own gets one frame.
func (u *User) watch(ctx actor.Context, m *parleypb.Watch) {
	if !m.Watching {
		if u.p.peers != nil {
			delete(u.p.peers.watchers, m.Watcher)
		}
		return
	}
	p := u.p.more()
	if p.watchers == nil {
		p.watchers = map[string]struct{}{}
	}
	if _, had := p.watchers[m.Watcher]; had {
		return // it has heard the status already
	}
	p.watchers[m.Watcher] = struct{}{}
	// Until its own read of who is online has answered, the user has told no one:
	// that announcement will include this watcher. After it, the watcher is told now.
	if st := u.statusNow(); u.p.announced && st != statusOffline && u.presenceRules().shows(m.Watcher) {
		u.deps.tell(ctx, m.Watcher, KindUser, u.presenceNotify(st))
	}
}

// contactChanged follows the user's adding or removing a contact: who may see it
// ("contacts" setting) is reloaded, and while it is online it starts or stops
// watching the contact, as its coming online would have (the contact's grain tells
// it the contact's status at once if it may see it).
func (u *User) contactChanged(ctx actor.Context, m *parleypb.ContactChanged) {
	u.settingsChanged(ctx)
	if !u.p.announced || m.Contact == u.id {
		return // offline, or its read of who is online has not answered yet (it will find the contact)
	}
	p := u.p.more()
	had := slices.Contains(p.watching, m.Contact)
	switch {
	case m.Added && !had:
		p.watching = append(p.watching, m.Contact)
	case !m.Added && had:
		p.watching = slices.DeleteFunc(p.watching, func(c string) bool { return c == m.Contact })
	default:
		return
	}
	u.deps.tell(ctx, m.Contact, KindUser, &parleypb.Watch{Watcher: u.id, Watching: m.Added})
}

// deviceStatus records a connection's device going away or coming back.
func (u *User) deviceStatus(ctx actor.Context, m *parleypb.DeviceStatus) {
	if u.find(m.Conn) < 0 {
		return
	}
	p := u.p.more()
	p.away = dropPID(p.away, m.Conn)
	if m.Away {
		p.away = append(p.away, m.Conn)
	}
	u.announce(ctx)
}

// settingsChanged reloads who may see the user and tells each watcher whose view
// changed what it may see now: one that may no longer see it is told offline (no
// lastSeen), one that may see it again its status.
func (u *User) settingsChanged(ctx actor.Context) {
	before := u.presenceRules()
	u.p.more().rules = nil
	rules := u.presenceRules()
	if !u.p.announced {
		return // no watcher has heard anything in this online period
	}
	st := u.statusNow()
	for w := range u.p.peers.watchers {
		switch was, is := before.shows(w), rules.shows(w); {
		case was && !is:
			u.deps.tell(ctx, w, KindUser, &parleypb.Notify{Presence: &parleypb.Presence{User: u.id, Status: "offline"}})
		case !was && is && st != statusOffline:
			u.deps.tell(ctx, w, KindUser, u.presenceNotify(st))
		}
	}
	u.p.shown = st
}

// announce tells every watcher the user may be seen by a change of status: one
// message to each watcher's grain, which writes one presence frame to each of its
// connections.
func (u *User) announce(ctx actor.Context) {
	if !u.p.announced {
		return // onlineWritten tells everyone, once it knows who
	}
	st := u.statusNow()
	if st == u.p.shown {
		return
	}
	u.p.shown = st
	if u.p.peers == nil || len(u.p.peers.watchers) == 0 {
		return
	}
	rules := u.presenceRules()
	n := u.presenceNotify(st)
	for w := range u.p.peers.watchers {
		if rules.shows(w) {
			u.deps.tell(ctx, w, KindUser, n)
		}
	}
}

func (u *User) presenceNotify(st status) *parleypb.Notify {
	p := &parleypb.Presence{User: u.id, Status: st.String()}
	if st == statusOffline {
		p.LastSeen = u.lastSeen
	}
	return &parleypb.Notify{Presence: p}
}

// presenceRules loads who may see the user, once per activation (and again after
// settingsChanged). If the store cannot say, the user is shown to no one.
func (u *User) presenceRules() *presenceRules {
	if u.p.peers != nil && u.p.peers.rules != nil {
		return u.p.peers.rules
	}
	cx, cancel := u.deps.timeout()
	defer cancel()
	r := &presenceRules{visibility: persistence.VisibleToNobody}
	v, _, err := u.deps.Store.Visibility(cx, u.id, u.id)
	if err == nil && v == persistence.VisibleToContacts {
		var ids []string
		if ids, err = u.deps.Store.ContactIDs(cx, u.id); err == nil {
			r.contacts = make(map[string]struct{}, len(ids))
			for _, id := range ids {
				r.contacts[id] = struct{}{}
			}
		}
	}
	if err != nil {
		u.deps.Log.Warn("presence: reading who may see it", slog.String("user", u.id), slog.Any("err", err))
		return r // not kept: the next change reads again
	}
	r.visibility = v
	u.p.more().rules = r
	return r
}

func dropPID(pids []*actor.PID, pid *actor.PID) []*actor.PID {
	for i, p := range pids {
		if p.Equal(pid) {
			return append(pids[:i], pids[i+1:]...)
		}
	}
	return pids
}
