package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type countingDirectoryStore struct {
	users, groups map[string]bool
	lookups       int
	err           error
}

func (s *countingDirectoryStore) UsersExist(_ context.Context, ids []string) (map[string]bool, error) {
	s.lookups++
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = s.users[id]
	}
	return out, s.err
}

func (s *countingDirectoryStore) GroupExists(_ context.Context, g string) (bool, error) {
	s.lookups++
	return s.groups[g], s.err
}

func (s *countingDirectoryStore) ChannelExists(_ context.Context, c string) (bool, error) {
	s.lookups++
	return s.groups["channel:"+c], s.err
}

// The directory asks the store once for what exists, again only after absentFor for
// what did not, never caches an error, and learns a created group without a lookup.
func TestDirectoryCaches(t *testing.T) {
	ctx := context.Background()
	s := &countingDirectoryStore{users: map[string]bool{"alice": true}, groups: map[string]bool{}}
	d := NewDirectory(s)
	d.absentFor = 50 * time.Millisecond

	for range 3 {
		ok, err := d.UserExists(ctx, "alice")
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.Equal(t, 1, s.lookups, "a user that exists is looked up once")

	for range 3 {
		ok, err := d.UserExists(ctx, "ghost")
		require.NoError(t, err)
		require.False(t, ok)
	}
	require.Equal(t, 2, s.lookups, "an absent user is remembered for a while")
	s.users["ghost"] = true // registered meanwhile
	time.Sleep(60 * time.Millisecond)
	ok, err := d.UserExists(ctx, "ghost")
	require.NoError(t, err)
	require.True(t, ok, "after absentFor the store is asked again")
	require.Equal(t, 3, s.lookups)

	s.err = errors.New("down")
	_, err = d.GroupExists(ctx, "g1")
	require.Error(t, err)
	_, err = d.GroupExists(ctx, "g1")
	require.Error(t, err, "an error is not an answer to keep")
	require.Equal(t, 5, s.lookups)
	s.err = nil

	d.Known("g1")
	ok, err = d.GroupExists(ctx, "g1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 5, s.lookups, "a group this node created needs no lookup")
	ok, _ = d.UserExists(ctx, "g1")
	require.False(t, ok, "users and groups are different names")
}

// Absent answers are bounded: past maxAbsent the expired ones make room, and the
// live ones are simply not added (the store is asked again).
func TestDirectoryBoundsAbsent(t *testing.T) {
	ctx := context.Background()
	s := &countingDirectoryStore{users: map[string]bool{}, groups: map[string]bool{}}
	d := NewDirectory(s)
	for i := range maxAbsent + 100 {
		_, err := d.GroupExists(ctx, string(rune('a'+i%26))+time.Duration(i).String())
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(d.absent), maxAbsent)
}
