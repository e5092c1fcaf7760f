package actors

import (
	"context"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// Directory answers whether a user or a group exists, from the store, before anything
// activates a grain for it: an id that names nothing must cost a lookup in an index,
// not a grain's memory for its idle timeout (security review, finding 1). Answers
// that something exists are kept (users and groups are never deleted), up to
// maxKnown; answers that it does not are kept for absentFor (it may be created
// meanwhile), up to maxAbsent. Safe for concurrent use.
type Directory struct {
	store     DirectoryStore
	absentFor time.Duration

	mu     sync.Mutex
	known  map[string]struct{}  // "u:<id>" or "g:<id>"
	absent map[string]time.Time // until
}

// DirectoryStore is what the directory reads (satisfied by *postgres.Store).
type DirectoryStore interface {
	UsersExist(ctx context.Context, ids []string) (map[string]bool, error)
	GroupExists(ctx context.Context, group string) (bool, error)
	ChannelExists(ctx context.Context, channel string) (bool, error)
}

const (
	maxKnown  = 200_000
	maxAbsent = 20_000
	absentFor = 2 * time.Second
)

// NewDirectory returns a directory over store.
func NewDirectory(store DirectoryStore) *Directory {
	return &Directory{store: store, absentFor: absentFor, known: map[string]struct{}{}, absent: map[string]time.Time{}}
}

// UserExists reports whether user is an account.
func (d *Directory) UserExists(ctx context.Context, user string) (bool, error) {
	return d.exists(ctx, "u:"+user, func() (bool, error) {
		exist, err := d.store.UsersExist(ctx, []string{user})
		return exist[user], err
	})
}

// GroupExists reports whether group was created.
func (d *Directory) GroupExists(ctx context.Context, group string) (bool, error) {
	return d.exists(ctx, "g:"+group, func() (bool, error) { return d.store.GroupExists(ctx, group) })
}

// ChannelExists reports whether channel (its id, not its conversation id) was
// created.
func (d *Directory) ChannelExists(ctx context.Context, channel string) (bool, error) {
	return d.exists(ctx, "c:"+channel, func() (bool, error) { return d.store.ChannelExists(ctx, channel) })
}

func (d *Directory) exists(_ context.Context, key string, lookup func() (bool, error)) (bool, error) {
	now := time.Now()
	d.mu.Lock()
	if _, ok := d.known[key]; ok {
		d.mu.Unlock()
		return true, nil
	}
	if until, ok := d.absent[key]; ok && now.Before(until) {
		d.mu.Unlock()
		return false, nil
	}
	d.mu.Unlock()
	ok, err := lookup()
	if err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case ok:
		delete(d.absent, key)
		if len(d.known) >= maxKnown {
			for k := range d.known { // drop one at random: the cache only saves lookups
				delete(d.known, k)
				break
			}
		}
		d.known[key] = struct{}{}
	case len(d.absent) < maxAbsent:
		d.absent[key] = now.Add(d.absentFor)
	default:
		for k, until := range d.absent { // full: make room from what expired
			if now.After(until) {
				delete(d.absent, k)
			}
		}
	}
	return ok, nil
}

// Known records that a group exists (its creator's node need not look it up).
func (d *Directory) Known(group string) { d.learn("g:" + group) }

// KnownChannel records that channel (its id) exists (it was just created).
func (d *Directory) KnownChannel(channel string) { d.learn("c:" + channel) }

// learn records that key exists, without a lookup.
func (d *Directory) learn(key string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	delete(d.absent, key)
	if len(d.known) < maxKnown {
		d.known[key] = struct{}{}
	}
	d.mu.Unlock()
}

// GroupCall runs a group operation for a caller outside the actors (REST): an
// operation on a group that does not exist is answered not_found from the
// directory without activating its grain; a create spends one of its creator's
// groups (Budgets.Groups) and teaches the directory the group.
func GroupCall(d *Deps, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error) {
	if !convid.ValidGroupID(req.Group) {
		return nil, parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such group")
	}
	if req.Op != parleypb.GroupRequest_CREATE && d.Directory != nil {
		cx, cancel := d.timeout()
		ok, err := d.Directory.GroupExists(cx, req.Group)
		cancel()
		switch {
		case err != nil:
			return nil, parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
		case !ok:
			return nil, parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such group")
		}
	}
	if req.Op == parleypb.GroupRequest_CREATE && d.Settings.Budgets.Groups.Burst > 0 {
		if _, err := Call[*parleypb.SpendResponse](d, req.By, KindUser,
			&parleypb.SpendRequest{Kind: parleypb.SpendRequest_GROUP}); err != nil {
			return nil, err
		}
	}
	r, err := Call[*parleypb.GroupResponse](d, convid.GroupID(req.Group), KindConversation, req)
	if err == nil && req.Op == parleypb.GroupRequest_CREATE {
		d.Directory.Known(req.Group)
	}
	return r, err
}

// ChannelCall runs a channel operation on the channel's grain, for the REST tier:
// a channel that does not exist activates no grain (but for its creation), and a
// creation spends the caller's groups-created budget (limits.groupsCreated covers
// channels too).
func ChannelCall(d *Deps, req *parleypb.ChannelRequest) (*parleypb.ChannelResponse, error) {
	if !convid.ValidGroupID(req.Channel) {
		return nil, parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel")
	}
	if req.Op != parleypb.ChannelRequest_CREATE && d.Directory != nil {
		cx, cancel := d.timeout()
		ok, err := d.Directory.ChannelExists(cx, req.Channel)
		cancel()
		switch {
		case err != nil:
			return nil, parleypb.Errorf(parleypb.ErrorReason_UNAVAILABLE, "store unavailable")
		case !ok:
			return nil, parleypb.Errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel")
		}
	}
	if req.Op == parleypb.ChannelRequest_CREATE && d.Settings.Budgets.Groups.Burst > 0 {
		if _, err := Call[*parleypb.SpendResponse](d, req.By, KindUser,
			&parleypb.SpendRequest{Kind: parleypb.SpendRequest_GROUP}); err != nil {
			return nil, err
		}
	}
	r, err := Call[*parleypb.ChannelResponse](d, convid.ChannelID(req.Channel), KindConversation, req)
	if err == nil && req.Op == parleypb.ChannelRequest_CREATE {
		d.Directory.KnownChannel(req.Channel) // nil-safe
	}
	return r, err
}
