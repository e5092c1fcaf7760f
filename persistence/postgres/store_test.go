package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

func mustOpen(t testing.TB) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t), postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func msg(conv, from, client string, id int64) *parleypb.Message {
	return &parleypb.Message{MessageId: id, Conversation: conv, From: from, ClientId: client, Text: "t" + client, Ts: id}
}

func TestAppendConversationVersionsAndClientDedupe(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	const conv = "dm:alice:bob"

	res, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: 0,
		Messages: []*parleypb.Message{msg(conv, "alice", "c1", 10), msg(conv, "bob", "c1", 11)}})
	require.NoError(t, err)
	require.Equal(t, uint64(2), res.Version)
	require.Equal(t, []int64{10, 11}, res.Inserted)

	// A repeated (sender, client id) is skipped; the new one takes the next version.
	res, err = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: 2,
		Messages: []*parleypb.Message{msg(conv, "alice", "c1", 12), msg(conv, "alice", "c2", 13)}})
	require.NoError(t, err)
	require.Equal(t, uint64(3), res.Version)
	require.Equal(t, []int64{13}, res.Inserted)

	found, err := s.FindByClientID(ctx, conv, "alice", "c1")
	require.NoError(t, err)
	require.Equal(t, int64(10), found.MessageId)
	_, err = s.FindByClientID(ctx, conv, "alice", "nope")
	require.ErrorIs(t, err, persistence.ErrNotFound)

	// A writer with a stale version writes nothing.
	_, err = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: 2,
		Messages: []*parleypb.Message{msg(conv, "alice", "c3", 14)}})
	require.ErrorIs(t, err, persistence.ErrConflict)
	v, err := s.ConversationVersion(ctx, conv)
	require.NoError(t, err)
	require.Equal(t, uint64(3), v)
	last, err := s.LastMessageID(ctx, conv)
	require.NoError(t, err)
	require.Equal(t, int64(13), last)

	// A new stream with a non-zero expected version is a conflict too.
	_, err = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: "dm:x:y", Expected: 5,
		Messages: []*parleypb.Message{msg("dm:x:y", "x", "c1", 1)}})
	require.ErrorIs(t, err, persistence.ErrConflict)
}

// Two activations of one grain append concurrently from the same version: exactly
// one wins, and the stream holds only the winner's messages.
func TestConcurrentWritersOneWins(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	for round := range 20 {
		user := fmt.Sprintf("u%d", round)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ms []*parleypb.Message
				for i := range 3 {
					ms = append(ms, msg("dm:a:b", "a", "x", int64(1000*(w+1)+i)))
				}
				_, errs[w] = s.AppendUser(ctx, persistence.UserAppend{User: user, Expected: 0, Messages: ms})
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				require.ErrorIs(t, err, persistence.ErrConflict)
			}
		}
		require.Equal(t, 1, wins, "round %d: %v", round, errs)
		q, err := s.ReadQueue(ctx, user, 0, 100)
		require.NoError(t, err)
		require.Len(t, q, 3)
		require.Equal(t, q[0].MessageId/1000, q[2].MessageId/1000, "entries of one writer only")
	}
}

func TestAppendUserGaplessWithDedupe(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	res, err := s.AppendUser(ctx, persistence.UserAppend{User: "bob", Expected: 0,
		Messages: []*parleypb.Message{msg("dm:a:bob", "a", "1", 1), msg("dm:a:bob", "a", "2", 2)}})
	require.NoError(t, err)
	require.Equal(t, uint64(2), res.Version)
	require.Equal(t, []uint64{1, 2}, []uint64{res.Entries[0].Seq, res.Entries[1].Seq})

	// Re-driven message 2 is skipped; 3 takes seq 3, not 4.
	res, err = s.AppendUser(ctx, persistence.UserAppend{User: "bob", Expected: 2,
		Messages: []*parleypb.Message{msg("dm:a:bob", "a", "2", 2), msg("dm:a:bob", "a", "3", 3)}})
	require.NoError(t, err)
	require.Equal(t, uint64(3), res.Version)
	require.Len(t, res.Entries, 1)
	require.Equal(t, uint64(3), res.Entries[0].Seq)
	require.Equal(t, int64(3), res.Entries[0].MessageId)

	// All duplicates: version unchanged, nothing written.
	res, err = s.AppendUser(ctx, persistence.UserAppend{User: "bob", Expected: 3,
		Messages: []*parleypb.Message{msg("dm:a:bob", "a", "1", 1)}})
	require.NoError(t, err)
	require.Equal(t, uint64(3), res.Version)
	require.Empty(t, res.Entries)

	q, err := s.ReadQueue(ctx, "bob", 1, 10)
	require.NoError(t, err)
	require.Len(t, q, 2)
	require.Equal(t, uint64(2), q[0].Seq)
	require.Equal(t, uint64(3), q[1].Seq)
	v, err := s.UserVersion(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, uint64(3), v)
}

func TestHistoryPages(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	const conv = "dm:a:b"
	var ms []*parleypb.Message
	for i := 1; i <= 25; i++ {
		ms = append(ms, msg(conv, "a", fmt.Sprint(i), int64(i*10)))
	}
	_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Messages: ms})
	require.NoError(t, err)

	var seen []int64
	before := int64(0)
	for {
		page, more, err := s.History(ctx, conv, before, 0, 10)
		require.NoError(t, err)
		for i := 1; i < len(page); i++ {
			require.Less(t, page[i-1].MessageId, page[i].MessageId)
		}
		ids := make([]int64, len(page))
		for i, m := range page {
			ids[i] = m.MessageId
		}
		seen = append(ids, seen...)
		if !more {
			break
		}
		before = page[0].MessageId
	}
	require.Len(t, seen, 25)
	for i, id := range seen {
		require.Equal(t, int64((i+1)*10), id)
	}
	after, err := s.ReadConversation(ctx, conv, 200, 100)
	require.NoError(t, err)
	require.Len(t, after, 5)
}

func TestCursorsOnlyMoveForward(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	require.NoError(t, s.SaveCursor(ctx, "bob", "d1", 5))
	require.NoError(t, s.SaveCursor(ctx, "bob", "d1", 3))
	require.NoError(t, s.SaveCursor(ctx, "bob", "d2", 7))
	c, err := s.Cursors(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"d1": 5, "d2": 7}, c)
}

func TestSnapshotsKeepNewest(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	_, _, err := s.Snapshot(ctx, "c:x")
	require.ErrorIs(t, err, persistence.ErrNotFound)
	require.NoError(t, s.SaveSnapshot(ctx, "c:x", 10, []byte("ten")))
	require.NoError(t, s.SaveSnapshot(ctx, "c:x", 5, []byte("five")))
	v, state, err := s.Snapshot(ctx, "c:x")
	require.NoError(t, err)
	require.Equal(t, uint64(10), v)
	require.Equal(t, "ten", string(state))
}

func TestUsersAndSettings(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	require.NoError(t, s.CreateUser(ctx, persistence.User{ID: "alice", DisplayName: "Alice", PasswordHash: "h"}))
	err := s.CreateUser(ctx, persistence.User{ID: "alice", DisplayName: "Again", PasswordHash: "h"})
	require.ErrorIs(t, err, persistence.ErrConflict)
	u, err := s.User(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, "Alice", u.DisplayName)
	_, err = s.User(ctx, "nobody")
	require.ErrorIs(t, err, persistence.ErrNotFound)
	exist, err := s.UsersExist(ctx, []string{"alice", "nobody"})
	require.NoError(t, err)
	require.Equal(t, map[string]bool{"alice": true}, exist)

	calls := 0
	mk := func() ([]byte, error) { calls++; return []byte(fmt.Sprint("v", calls)), nil }
	a, err := s.Setting(ctx, "k", mk)
	require.NoError(t, err)
	b, err := s.Setting(ctx, "k", mk)
	require.NoError(t, err)
	require.Equal(t, a, b)
	require.Equal(t, 1, calls)
}

func TestNodeLeases(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	a, err := s.AcquireNodeID(ctx, "node-a", -1, time.Minute)
	require.NoError(t, err)
	b, err := s.AcquireNodeID(ctx, "node-b", -1, time.Minute)
	require.NoError(t, err)
	require.NotEqual(t, a.NodeID, b.NodeID)

	_, err = s.AcquireNodeID(ctx, "node-c", a.NodeID, time.Minute)
	require.ErrorIs(t, err, persistence.ErrConflict)

	// A released id goes to the next node with the old holder's reserved floor.
	require.NoError(t, s.RenewNodeID(ctx, a, time.Minute, 12345))
	require.NoError(t, s.ReleaseNodeID(ctx, a, 23456))
	c, err := s.AcquireNodeID(ctx, "node-c", a.NodeID, time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(23456), c.FloorMs)
	err = s.RenewNodeID(ctx, a, time.Minute, 0)
	require.True(t, errors.Is(err, persistence.ErrConflict), "the old holder lost it: %v", err)
}

func TestOutboxTracksUndeliveredFanout(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: "dm:a:b",
		Messages: []*parleypb.Message{msg("dm:a:b", "a", "1", 5), msg("dm:a:b", "a", "2", 9)}})
	require.NoError(t, err)
	pending, err := s.PendingOutbox(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"dm:a:b"}, pending)

	require.NoError(t, s.ClearOutbox(ctx, "dm:a:b", 5)) // not everything yet
	pending, err = s.PendingOutbox(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	require.NoError(t, s.ClearOutbox(ctx, "dm:a:b", 9))
	pending, err = s.PendingOutbox(ctx, 0, 10)
	require.NoError(t, err)
	require.Empty(t, pending)
}

// Commits running side by side take their row locks in one order (ops are sorted by
// key), so writes that touch the same rows in different orders never deadlock.
func TestConcurrentCommitsDoNotDeadlock(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	devices := []string{"d1", "d2", "d3", "d4"}
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				for k := range devices { // each writer walks the rows in its own order
					d := devices[(k+w)%len(devices)]
					go func() { errs <- s.SaveCursor(ctx, "bob", d, uint64(i)) }()
				}
				for range devices {
					if err := <-errs; err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	c, err := s.Cursors(ctx, "bob")
	require.NoError(t, err)
	require.Len(t, c, len(devices))
}
