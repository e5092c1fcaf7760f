package actors

import (
	"context"
	"slices"
	"strings"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// membership is how a kind of conversation decides who takes part: the
// conversation grain is the same single writer for each kind, and asks its
// membership who may post and whose queues receive a message.
type membership interface {
	// load rebuilds the membership from the store (at activation, and after another
	// writer moved the stream).
	load(ctx context.Context, d *Deps, conv string) error
	// mayPost answers whether from may post now (nil: yes); it may read the store.
	mayPost(d *Deps, from string) *parleypb.GrainError
	// recipients are the users whose queues receive a message posted now.
	recipients() []string
	// isMember reports whether user takes part now.
	isMember(user string) bool
	// lastID is the highest event id the membership knows (0 if none).
	lastID() int64
}

// direct is the membership of a 1:1 conversation: its two users, fixed by the id,
// who must both exist.
type direct struct {
	users []string // sorted, as in the id
	known bool     // both exist (checked once per activation)
}

func newMembership(conv string) (membership, error) {
	id, err := convid.Parse(conv)
	if err != nil {
		return nil, err
	}
	switch id.Kind {
	case convid.Direct:
		return &direct{users: id.Members}, nil
	case convid.Channel:
		return &channel{info: persistence.Channel{ID: conv}}, nil
	}
	return &group{joined: map[string]int64{}}, nil
}

func (m *direct) load(context.Context, *Deps, string) error { return nil }

func (m *direct) mayPost(d *Deps, from string) *parleypb.GrainError {
	if !m.isMember(from) {
		return parleypb.Errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of this conversation")
	}
	return m.exist(d)
}

// exist checks once that both users exist.
func (m *direct) exist(d *Deps) *parleypb.GrainError {
	if m.known {
		return nil
	}
	if e := usersExist(d, m.users); e != nil {
		return e
	}
	m.known = true
	return nil
}

func (m *direct) recipients() []string      { return m.users }
func (m *direct) isMember(user string) bool { return slices.Contains(m.users, user) }
func (m *direct) lastID() int64             { return 0 }

// peer is the other user of the conversation, and whether of is a member.
func (m *direct) peer(of string) (string, bool) {
	for _, u := range m.users {
		if u != of {
			return u, m.isMember(of)
		}
	}
	return "", false
}

// shortID is the group or channel id of a group or channel conversation id.
func shortID(conv string) string {
	if _, id, ok := strings.Cut(conv, ":"); ok {
		return id
	}
	return conv
}

// usersExist answers not_found for the first of users that is no account.
func usersExist(d *Deps, users []string) *parleypb.GrainError {
	ctx, cancel := d.timeout()
	defer cancel()
	exist, err := d.Store.UsersExist(ctx, users)
	if err != nil {
		return parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable; try again")
	}
	for _, u := range users {
		if !exist[u] {
			return parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "user %s does not exist", u)
		}
	}
	return nil
}
