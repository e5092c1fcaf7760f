package actors

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/textcheck"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// channel is the membership of a channel: fan-out on read. A message is one row in
// the channel's stream and goes into no member's queue (recipients is empty); online
// members get it from their node's ChannelHub, offline ones pull it. The grain keeps
// the settings, the admins and the member count, never the members: a member is
// looked up in the store when it posts to an open channel (and remembered, up to
// maxChannelKnown), so a channel of a million members costs the grain what one of ten does.
type channel struct {
	info    persistence.Channel // Owner "" until created
	admins  map[string]bool
	lastMsg int64 // the id of the channel's last message (0: none): the next one's prev

	known map[string]int // role of members looked up (bounded by maxChannelKnown)
	posts map[string]*bucket
}

// maxChannelKnown bounds the members a channel grain remembers (roles looked up, post
// buckets); past it the memory is dropped, which only costs a lookup again.
const maxChannelKnown = 10_000

func (c *channel) exists() bool { return c.info.Owner != "" }

func (c *channel) load(ctx context.Context, d *Deps, conv string) error {
	info, err := d.Store.Channel(ctx, conv)
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		*c = channel{info: persistence.Channel{ID: conv}}
		return nil
	case err != nil:
		return err
	}
	*c = channel{info: info, admins: map[string]bool{}, lastMsg: info.LastMessageID}
	for _, a := range info.Admins {
		c.admins[a] = true
	}
	return nil
}

// role is user's role; ok false if it is no member (or the store cannot say: err).
func (c *channel) role(d *Deps, user string) (role int, ok bool, err error) {
	switch {
	case user == c.info.Owner:
		return persistence.ChannelOwner, true, nil
	case c.admins[user]:
		return persistence.ChannelAdmin, true, nil
	}
	if r, ok := c.known[user]; ok {
		return r, true, nil
	}
	ctx, cancel := d.timeout()
	defer cancel()
	r, ok, err := d.Store.ChannelRole(ctx, c.info.ID, user)
	if err != nil || !ok {
		return 0, false, err
	}
	c.remember(user, r)
	return r, true, nil
}

// remember keeps a member's role, within maxChannelKnown.
func (c *channel) remember(user string, role int) {
	if c.known == nil || len(c.known) >= maxChannelKnown {
		c.known = map[string]int{}
	}
	c.known[user] = role
}

func (c *channel) mayPost(d *Deps, from string) *parleypb.GrainError {
	if !c.exists() {
		return parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel")
	}
	role, member, err := c.role(d, from)
	switch {
	case err != nil:
		return parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; try again")
	case !member:
		return parleypb.Errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of this channel")
	case role == persistence.ChannelMember && c.info.Mode != persistence.ChannelOpen:
		return parleypb.Errorf(parleypb.ErrorReason_FORBIDDEN, "only the owner and admins post in a broadcast channel")
	case role == persistence.ChannelMember:
		r := d.Settings.ChannelPosts
		if r.Burst <= 0 {
			return nil
		}
		b := c.posts[from]
		if b == nil {
			if c.posts == nil || len(c.posts) >= maxChannelKnown {
				c.posts = map[string]*bucket{}
			}
			b = newBucket(r.PerSecond, r.Burst)
			c.posts[from] = b
		}
		if !b.take() {
			return parleypb.Errorf(parleypb.ErrorReason_RATE_LIMITED,
				"posting faster than this channel allows a member; try again in %s", b.wait().Round(1e6))
		}
	}
	return nil
}

func (c *channel) recipients() []string { return nil }

// mentions returns the members that text mentions as @user in an open channel
// (each once, not from, at most Settings.ChannelMentions): the post goes into
// their sync queues too, so that it reaches them as a 1:1 message would, pushed
// when no device of theirs is online. Broadcast channels mention no one: their
// members are never pushed per message. A mention is an @ that follows no letter,
// digit, "_", "." or "-" ("a@b" is an address), then a user id that ends where a
// character that cannot be in one does not follow ("@bobX" names no one); trailing
// dots and dashes are punctuation ("hi @bob."). The names not known to the grain
// are looked up in one store read.
func (c *channel) mentions(d *Deps, from, text string) []string {
	limit := d.Settings.ChannelMentions
	if limit <= 0 || c.info.Mode != persistence.ChannelOpen || !strings.Contains(text, "@") {
		return nil
	}
	var names []string
	for i := 0; i < len(text) && len(names) < 2*limit; i++ {
		if text[i] != '@' {
			continue
		}
		if prev, _ := utf8.DecodeLastRuneInString(text[:i]); i > 0 && mentionRune(prev) {
			continue
		}
		j := i + 1
		for j < len(text) && text[j] < utf8.RuneSelf && mentionRune(rune(text[j])) {
			j++
		}
		if r, _ := utf8.DecodeRuneInString(text[j:]); j < len(text) && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			i = j - 1
			continue // the name goes on in letters a user id has not
		}
		name := strings.TrimRight(text[i+1:j], ".-")
		i = j - 1
		if convid.UserID.MatchString(name) && name != from && !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	var unknown []string
	for _, n := range names {
		if _, ok := c.known[n]; !ok && n != c.info.Owner && !c.admins[n] {
			unknown = append(unknown, n)
		}
	}
	var found map[string]int
	if len(unknown) > 0 {
		ctx, cancel := d.timeout()
		var err error
		found, err = d.Store.ChannelRoles(ctx, c.info.ID, unknown)
		cancel()
		if err != nil {
			d.Log.Warn("channel mentions: looking up members", slog.String("channel", c.info.ID), slog.Any("error", err))
			return nil // the post goes on, to no one's queue
		}
	}
	var out []string
	for _, n := range names {
		_, known := c.known[n]
		role, isNew := found[n]
		switch {
		case known || n == c.info.Owner || c.admins[n]:
		case isNew:
			c.remember(n, role)
		default:
			continue // no member
		}
		if out = append(out, n); len(out) == limit {
			break
		}
	}
	return out
}

// mentionRune reports whether r may be part of a user id (convid.UserID), or is an
// upper-case letter, which makes the word no mention.
func mentionRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' ||
		r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

func (c *channel) isMember(user string) bool {
	_, ok := c.known[user]
	return ok || user == c.info.Owner || c.admins[user]
}

func (c *channel) lastID() int64 { return 0 } // ConversationHead has every event's id

// info answers a channel read.
func (c *channel) answer(id string) *parleypb.ChannelResponse {
	admins := make([]string, 0, len(c.admins))
	for a := range c.admins {
		admins = append(admins, a)
	}
	slices.Sort(admins)
	return &parleypb.ChannelResponse{Channel: id, Name: c.info.Name, Owner: c.info.Owner, Mode: c.info.Mode,
		Public: c.info.Public, Admins: admins, MemberCount: c.info.MemberCount}
}

func channelError(r parleypb.ErrorReason, format string, args ...any) *parleypb.ChannelResponse {
	return &parleypb.ChannelResponse{Error: parleypb.Errorf(r, format, args...)}
}

// read answers GET: members see the channel, and anyone a public one.
func (c *channel) read(d *Deps, id string, by string) *parleypb.ChannelResponse {
	if !c.exists() {
		return channelError(parleypb.ErrorReason_NOT_FOUND, "no such channel")
	}
	if !c.info.Public {
		_, member, err := c.role(d, by)
		switch {
		case err != nil:
			return channelError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; try again")
		case !member:
			return channelError(parleypb.ErrorReason_FORBIDDEN, "not a member of this channel")
		}
	}
	return c.answer(id)
}

// prepare checks a change against the channel now: it returns the event to append,
// or the answer when there is nothing to append (an error, or a change made
// already).
func (c *channel) prepare(d *Deps, id string, req *parleypb.ChannelRequest) (*parleypb.ChannelEvent, *parleypb.ChannelResponse) {
	if req.Op == parleypb.ChannelRequest_CREATE {
		return c.prepareCreate(d, id, req)
	}
	if !c.exists() {
		return nil, channelError(parleypb.ErrorReason_NOT_FOUND, "no such channel")
	}
	byRole, byMember, err := c.role(d, req.By)
	if err != nil {
		return nil, channelError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; try again")
	}
	manager := byMember && byRole >= persistence.ChannelAdmin
	switch req.Op {
	case parleypb.ChannelRequest_ADD_MEMBERS:
		users := uniqueExcept(req.Users, "")
		switch {
		case len(users) == 0:
			return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "no users to add")
		case len(users) > d.Settings.ChannelAddBatch:
			return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "at most %d users per call", d.Settings.ChannelAddBatch)
		case !manager && !(c.info.Public && len(users) == 1 && users[0] == req.By):
			return nil, channelError(parleypb.ErrorReason_FORBIDDEN, "only the owner and admins add members (anyone joins a public channel)")
		case c.info.MemberCount+int64(len(users)) > int64(d.Settings.MaxChannelMembers):
			return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "the channel is full (%d members)", d.Settings.MaxChannelMembers)
		}
		if e := usersExist(d, users); e != nil {
			return nil, &parleypb.ChannelResponse{Error: e}
		}
		return &parleypb.ChannelEvent{Kind: parleypb.ChannelEvent_MEMBERS_ADDED, By: req.By, Users: users}, nil
	case parleypb.ChannelRequest_REMOVE_MEMBER:
		role, member, err := c.role(d, req.User)
		switch {
		case err != nil:
			return nil, channelError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; try again")
		case req.User == c.info.Owner:
			return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "the owner cannot leave the channel")
		case req.By != req.User && !manager:
			return nil, channelError(parleypb.ErrorReason_FORBIDDEN, "only the owner and admins remove others")
		case req.By != req.User && role == persistence.ChannelAdmin && byRole != persistence.ChannelOwner:
			return nil, channelError(parleypb.ErrorReason_FORBIDDEN, "only the owner removes an admin")
		case !member:
			return nil, c.answer(id)
		}
		return &parleypb.ChannelEvent{Kind: parleypb.ChannelEvent_MEMBERS_REMOVED, By: req.By, Users: []string{req.User}}, nil
	default: // SET_ADMIN
		role, member, err := c.role(d, req.User)
		switch {
		case err != nil:
			return nil, channelError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; try again")
		case byRole != persistence.ChannelOwner || !byMember:
			return nil, channelError(parleypb.ErrorReason_FORBIDDEN, "only the owner names admins")
		case req.User == c.info.Owner:
			return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "the owner is not an admin")
		case !member:
			return nil, channelError(parleypb.ErrorReason_NOT_FOUND, "user %s is not a member", clip(req.User))
		case (role == persistence.ChannelAdmin) == req.Admin:
			return nil, c.answer(id)
		}
		return &parleypb.ChannelEvent{Kind: parleypb.ChannelEvent_ADMIN_SET, By: req.By, User: req.User, Admin: req.Admin}, nil
	}
}

func (c *channel) prepareCreate(d *Deps, id string, req *parleypb.ChannelRequest) (*parleypb.ChannelEvent, *parleypb.ChannelResponse) {
	if c.exists() {
		if c.info.Owner == req.By {
			return nil, c.answer(id) // a repeated create
		}
		return nil, channelError(parleypb.ErrorReason_CONFLICT, "channel id taken")
	}
	mode := req.Mode
	if mode == "" {
		mode = persistence.ChannelBroadcast
	}
	switch {
	case req.Name == "" || utf8.RuneCountInString(req.Name) > maxGroupName:
		return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "name must be 1 to %d characters", maxGroupName)
	case mode != persistence.ChannelBroadcast && mode != persistence.ChannelOpen:
		return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "mode must be broadcast or open")
	}
	if err := textcheck.Name(req.Name); err != nil {
		return nil, channelError(parleypb.ErrorReason_BAD_REQUEST, "name is refused: %v", err)
	}
	if e := usersExist(d, []string{req.By}); e != nil {
		return nil, &parleypb.ChannelResponse{Error: e}
	}
	return &parleypb.ChannelEvent{Kind: parleypb.ChannelEvent_CHANNEL_CREATED, By: req.By, User: req.By,
		Name: req.Name, Mode: mode, Public: req.Public}, nil
}

// apply changes the channel by one committed event; count is the member count the
// store holds after it, when the event changed it (-1: unknown).
func (c *channel) apply(e *parleypb.ChannelEvent, count int64) {
	switch e.Kind {
	case parleypb.ChannelEvent_CHANNEL_CREATED:
		c.info = persistence.Channel{ID: c.info.ID, Name: e.Name, Owner: e.User, Mode: e.Mode, Public: e.Public,
			MemberCount: 1, CreatedID: e.EventId}
		c.admins = map[string]bool{}
	case parleypb.ChannelEvent_MEMBERS_ADDED:
		for _, u := range e.Users {
			if _, ok := c.known[u]; !ok && c.known != nil && len(c.known) < maxChannelKnown {
				c.known[u] = persistence.ChannelMember
			}
		}
	case parleypb.ChannelEvent_MEMBERS_REMOVED:
		for _, u := range e.Users {
			delete(c.known, u)
			delete(c.admins, u)
			delete(c.posts, u)
		}
	case parleypb.ChannelEvent_ADMIN_SET:
		if e.Admin {
			c.admins[e.User] = true
		} else {
			delete(c.admins, e.User)
		}
		delete(c.known, e.User)
	}
	if count >= 0 {
		c.info.MemberCount = count
	}
}
