package actors

import (
	"context"
	"slices"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/internal/textcheck"
	"github.com/parleychat/parley/proto/parleypb"
)

// maxGroupName is the longest group name, in characters.
const maxGroupName = 100

// group is the membership of a group conversation, rebuilt from the membership
// events of its stream: an owner, and members who each see the messages after their
// latest join. Changes are events appended alone, in the stream's order.
type group struct {
	name    string
	owner   string           // "" until the group is created
	joined  map[string]int64 // member -> event id of its latest join
	members []string         // the keys of joined, sorted
	last    int64            // the highest event id applied
}

func (g *group) exists() bool { return g.owner != "" }

func (g *group) load(ctx context.Context, d *Deps, conv string) error {
	events, err := d.Store.GroupEvents(ctx, conv)
	if err != nil {
		return err
	}
	*g = group{joined: map[string]int64{}}
	for _, e := range events {
		g.apply(e)
	}
	return nil
}

func (g *group) mayPost(_ *Deps, from string) *parleypb.GrainError {
	switch {
	case !g.exists():
		return parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such group")
	case !g.isMember(from):
		return parleypb.Errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of this group")
	}
	return nil
}

func (g *group) recipients() []string { return g.members }

func (g *group) isMember(user string) bool {
	_, ok := g.joined[user]
	return ok
}

func (g *group) lastID() int64 { return g.last }

// apply changes the membership by one committed event.
func (g *group) apply(e *parleypb.GroupEvent) {
	join := func(u string) {
		if _, ok := g.joined[u]; !ok {
			g.joined[u] = e.EventId
			i, _ := slices.BinarySearch(g.members, u)
			g.members = slices.Insert(g.members, i, u)
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
		if _, ok := g.joined[e.User]; ok {
			delete(g.joined, e.User)
			i, _ := slices.BinarySearch(g.members, e.User)
			g.members = slices.Delete(g.members, i, i+1)
		}
	}
	g.last = max(g.last, e.EventId)
}

// read answers a group read: the group, or the caller's membership.
func (g *group) read(id string, req *parleypb.GroupRequest) *parleypb.GroupResponse {
	joined, member := g.joined[req.By]
	switch {
	case !g.exists():
		return groupError(parleypb.ErrorReason_NOT_FOUND, "no such group")
	case !member:
		return groupError(parleypb.ErrorReason_FORBIDDEN, "not a member of this group")
	case req.Op == parleypb.GroupRequest_MEMBERSHIP:
		return &parleypb.GroupResponse{Group: id, JoinedAt: joined}
	}
	return g.info(id)
}

func (g *group) info(id string) *parleypb.GroupResponse {
	return &parleypb.GroupResponse{Group: id, Name: g.name, Owner: g.owner, Members: slices.Clone(g.members)}
}

func groupError(r parleypb.ErrorReason, format string, args ...any) *parleypb.GroupResponse {
	return &parleypb.GroupResponse{Error: parleypb.Errorf(r, format, args...)}
}

// prepare checks a change against the current membership: it returns the event to
// append, or the answer when there is nothing to append (an error, or a change made
// already).
func (g *group) prepare(d *Deps, id string, req *parleypb.GroupRequest) (*parleypb.GroupEvent, *parleypb.GroupResponse) {
	limit := d.Settings.MaxGroupMembers
	switch req.Op {
	case parleypb.GroupRequest_CREATE:
		if g.exists() {
			if g.owner == req.By {
				return nil, g.info(id) // a repeated create
			}
			return nil, groupError(parleypb.ErrorReason_CONFLICT, "group id taken")
		}
		if req.Name == "" || utf8.RuneCountInString(req.Name) > maxGroupName {
			return nil, groupError(parleypb.ErrorReason_BAD_REQUEST, "name must be 1 to %d characters", maxGroupName)
		}
		if err := textcheck.Name(req.Name); err != nil { // REST checks too; a grain trusts no caller
			return nil, groupError(parleypb.ErrorReason_BAD_REQUEST, "name is refused: %v", err)
		}
		members := uniqueExcept(req.Members, req.By)
		if len(members)+1 > limit {
			return nil, groupError(parleypb.ErrorReason_BAD_REQUEST, "a group has at most %d members", limit)
		}
		if e := usersExist(d, append(members, req.By)); e != nil {
			return nil, &parleypb.GroupResponse{Error: e}
		}
		return &parleypb.GroupEvent{Kind: parleypb.GroupEvent_CREATED, By: req.By, User: req.By, Name: req.Name,
			Members: members}, nil
	case parleypb.GroupRequest_ADD_MEMBER:
		switch {
		case !g.exists():
			return nil, groupError(parleypb.ErrorReason_NOT_FOUND, "no such group")
		case req.By != g.owner:
			return nil, groupError(parleypb.ErrorReason_FORBIDDEN, "only the owner adds members")
		case g.isMember(req.User):
			return nil, g.info(id)
		case len(g.joined) >= limit:
			return nil, groupError(parleypb.ErrorReason_BAD_REQUEST, "the group is full (%d members)", limit)
		}
		if e := usersExist(d, []string{req.User}); e != nil {
			return nil, &parleypb.GroupResponse{Error: e}
		}
		return &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_ADDED, By: req.By, User: req.User}, nil
	default: // REMOVE_MEMBER
		switch {
		case !g.exists():
			return nil, groupError(parleypb.ErrorReason_NOT_FOUND, "no such group")
		case req.By != g.owner && req.By != req.User:
			return nil, groupError(parleypb.ErrorReason_FORBIDDEN, "only the owner removes others")
		case req.User == g.owner:
			return nil, groupError(parleypb.ErrorReason_BAD_REQUEST, "the owner cannot leave the group")
		case !g.isMember(req.User):
			return nil, g.info(id)
		}
		return &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_REMOVED, By: req.By, User: req.User}, nil
	}
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

// stamp gives a prepared event its id (from the message id sequence, above every
// id of the conversation) and time.
func stamp(gen *ids.Generator, e *parleypb.GroupEvent, after int64) {
	e.EventId = gen.NextAfter(after)
	e.Ts = ids.UnixMillis(e.EventId)
}
