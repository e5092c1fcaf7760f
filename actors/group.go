package actors

import (
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/proto/parleypb"
)

// groupState is a group conversation's membership, rebuilt from the membership
// events of its stream. A member sees the messages after its latest join.
type groupState struct {
	name   string
	owner  string           // "" until the group is created
	joined map[string]int64 // member -> event id of its latest join
}

func (g *groupState) exists() bool { return g.owner != "" }

// loadGroup replays the membership events.
func (c *Conversation) loadGroup(ctx context.Context) error {
	events, err := c.deps.Store.GroupEvents(ctx, c.id)
	if err != nil {
		return err
	}
	c.grp = &groupState{joined: map[string]int64{}}
	c.members = nil
	for _, e := range events {
		c.apply(e)
	}
	return nil
}

// apply changes the membership by one committed event.
func (c *Conversation) apply(e *parleypb.GroupEvent) {
	g := c.grp
	join := func(u string) {
		if _, ok := g.joined[u]; !ok {
			g.joined[u] = e.EventId
			c.delivered[u] = max(c.delivered[u], e.EventId) // nothing from before the join
		}
	}
	switch e.Kind {
	case parleypb.GroupEvent_CREATED:
		g.name, g.owner = e.Name, e.User
		join(e.User)
		for _, m := range e.Members {
			join(m)
		}
	case parleypb.GroupEvent_MEMBER_ADDED:
		join(e.User)
	case parleypb.GroupEvent_MEMBER_REMOVED:
		delete(g.joined, e.User)
		delete(c.delivered, e.User)
		delete(c.sending, e.User)
	}
	c.lastID = max(c.lastID, e.EventId)
	c.members = c.members[:0]
	for m := range g.joined {
		c.members = append(c.members, m)
	}
	slices.Sort(c.members)
}

// groupOp answers reads at once and queues changes, which are checked when they
// reach the head of the queue (after earlier appends, and again after a reload).
func (c *Conversation) groupOp(ctx actor.Context, req *parleypb.GroupRequest) {
	if c.grp == nil || c.broken {
		ctx.Respond(&parleypb.GroupResponse{Error: grainError(parleypb.ErrorReason_UNAVAILABLE, "group is restarting; retry")})
		return
	}
	switch req.Op {
	case parleypb.GroupRequest_GET, parleypb.GroupRequest_MEMBERSHIP:
		ctx.Respond(c.read(req))
	case parleypb.GroupRequest_CREATE, parleypb.GroupRequest_ADD_MEMBER, parleypb.GroupRequest_REMOVE_MEMBER:
		c.pending = append(c.pending, &post{op: req, waiters: []*actor.PID{ctx.Sender()}})
		c.flush(ctx)
	default:
		ctx.Respond(&parleypb.GroupResponse{Error: grainError(parleypb.ErrorReason_BAD_REQUEST, "unknown group operation")})
	}
}

func (c *Conversation) read(req *parleypb.GroupRequest) *parleypb.GroupResponse {
	g := c.grp
	joined, member := g.joined[req.By]
	switch {
	case !g.exists():
		return &parleypb.GroupResponse{Error: grainError(parleypb.ErrorReason_NOT_FOUND, "no such group")}
	case !member:
		return &parleypb.GroupResponse{Error: grainError(parleypb.ErrorReason_FORBIDDEN, "not a member of this group")}
	case req.Op == parleypb.GroupRequest_MEMBERSHIP:
		return &parleypb.GroupResponse{Group: c.groupID(), JoinedAt: joined}
	}
	return c.info()
}

func (c *Conversation) info() *parleypb.GroupResponse {
	return &parleypb.GroupResponse{Group: c.groupID(), Name: c.grp.name, Owner: c.grp.owner,
		Members: slices.Clone(c.members)}
}

func (c *Conversation) groupID() string { return strings.TrimPrefix(c.id, "group:") }

// prepare checks a queued change against the current membership: it returns the
// event to append, or the answer when there is nothing to append (an error, or a
// change already made).
func (c *Conversation) prepare(req *parleypb.GroupRequest) (*parleypb.GroupEvent, *parleypb.GroupResponse) {
	g := c.grp
	fail := func(r parleypb.ErrorReason, format string, args ...any) (*parleypb.GroupEvent, *parleypb.GroupResponse) {
		return nil, &parleypb.GroupResponse{Error: grainError(r, format, args...)}
	}
	switch req.Op {
	case parleypb.GroupRequest_CREATE:
		if g.exists() {
			if g.owner == req.By {
				return nil, c.info() // a repeated create
			}
			return fail(parleypb.ErrorReason_CONFLICT, "group id taken")
		}
		if req.Name == "" || utf8.RuneCountInString(req.Name) > 100 {
			return fail(parleypb.ErrorReason_BAD_REQUEST, "name must be 1 to 100 characters")
		}
		members := uniqueExcept(req.Members, req.By)
		if len(members)+1 > c.deps.Settings.MaxGroupMembers {
			return fail(parleypb.ErrorReason_BAD_REQUEST, "a group has at most %d members", c.deps.Settings.MaxGroupMembers)
		}
		if e := c.mustExist(append(members, req.By)); e != nil {
			return nil, &parleypb.GroupResponse{Error: e}
		}
		return &parleypb.GroupEvent{Kind: parleypb.GroupEvent_CREATED, By: req.By, User: req.By, Name: req.Name,
			Members: members}, nil
	case parleypb.GroupRequest_ADD_MEMBER:
		switch _, member := g.joined[req.User]; {
		case !g.exists():
			return fail(parleypb.ErrorReason_NOT_FOUND, "no such group")
		case req.By != g.owner:
			return fail(parleypb.ErrorReason_FORBIDDEN, "only the owner adds members")
		case member:
			return nil, c.info()
		case len(g.joined) >= c.deps.Settings.MaxGroupMembers:
			return fail(parleypb.ErrorReason_BAD_REQUEST, "the group is full (%d members)", c.deps.Settings.MaxGroupMembers)
		}
		if e := c.mustExist([]string{req.User}); e != nil {
			return nil, &parleypb.GroupResponse{Error: e}
		}
		return &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_ADDED, By: req.By, User: req.User}, nil
	default: // REMOVE_MEMBER
		switch _, member := g.joined[req.User]; {
		case !g.exists():
			return fail(parleypb.ErrorReason_NOT_FOUND, "no such group")
		case req.By != g.owner && req.By != req.User:
			return fail(parleypb.ErrorReason_FORBIDDEN, "only the owner removes others")
		case req.User == g.owner:
			return fail(parleypb.ErrorReason_BAD_REQUEST, "the owner cannot leave the group")
		case !member:
			return nil, c.info()
		}
		return &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_REMOVED, By: req.By, User: req.User}, nil
	}
}

func (c *Conversation) mustExist(users []string) *parleypb.GrainError {
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	exist, err := c.deps.Store.UsersExist(ctx, users)
	if err != nil {
		return grainError(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
	}
	for _, u := range users {
		if !exist[u] {
			return grainError(parleypb.ErrorReason_NOT_FOUND, "user %s does not exist", u)
		}
	}
	return nil
}

func uniqueExcept(users []string, except string) []string {
	seen := map[string]bool{except: true}
	var out []string
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			out = append(out, u)
		}
	}
	return out
}

// stamp gives a prepared event its id (from the message id sequence) and time.
func (c *Conversation) stamp(e *parleypb.GroupEvent) {
	e.EventId = c.deps.IDs.NextAfter(c.lastID)
	c.lastID = e.EventId
	e.Ts = ids.UnixMillis(e.EventId)
}

// typing forwards a typing notice to the other members who are online (their user
// grains push it to live connections); nothing is stored.
func (c *Conversation) typing(ctx actor.Context, req *parleypb.TypingRequest) {
	if !c.isMember(req.From) {
		return
	}
	if c.grp == nil && !c.known {
		if c.mustExist(c.members) != nil {
			return // no such user: nobody to tell
		}
		c.known = true
	}
	n := &parleypb.Notify{Typing: &parleypb.TypingNotice{Conversation: c.id, From: req.From}}
	for _, m := range c.members {
		if m != req.From {
			c.deps.tell(ctx, m, KindUser, n)
		}
	}
}
