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
	v, last, err := s.ConversationHead(ctx, conv)
	require.NoError(t, err)
	require.Equal(t, uint64(3), v)
	require.Equal(t, int64(13), last)

	// A new stream with a non-zero expected version is a conflict too.
	_, err = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: "dm:x:y", Expected: 5,
		Messages: []*parleypb.Message{msg("dm:x:y", "x", "c1", 1)}})
	require.ErrorIs(t, err, persistence.ErrConflict)
}

// Two activations of one grain append concurrently from the same version: exactly
// one wins, and the stream and the recipients' queues hold only the winner's messages.
func TestConcurrentWritersOneWins(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	for round := range 20 {
		conv := fmt.Sprintf("dm:a%d:b%d", round, round)
		users := []string{fmt.Sprint("a", round), fmt.Sprint("b", round)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var ms []*parleypb.Message
				for i := range 3 {
					ms = append(ms, msg(conv, users[0], fmt.Sprint("x", w, i), int64(1000*(w+1)+i)))
				}
				_, errs[w] = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv,
					Messages: ms, Recipients: users})
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
		for _, u := range users {
			q := mustQueue(t, s, u, 0)
			require.Len(t, q.Entries, 3)
			require.Equal(t, uint64(3), q.End)
			require.Equal(t, q.Entries[0].MessageId/1000, q.Entries[2].MessageId/1000, "entries of one writer only")
		}
	}
}

func mustQueue(t *testing.T, s *postgres.Store, user string, after uint64) persistence.QueuePage {
	t.Helper()
	q, err := s.ReadQueue(context.Background(), user, after, 1000)
	require.NoError(t, err)
	return q
}

// queueIDs is the message ids of a queue page, checking that its seqs are
// consecutive from first.
func queueIDs(t *testing.T, q persistence.QueuePage, first uint64) []int64 {
	t.Helper()
	ids := make([]int64, len(q.Entries))
	for i, m := range q.Entries {
		require.Equal(t, first+uint64(i), m.Seq, "seq of entry %d", i)
		ids[i] = m.MessageId
	}
	return ids
}

// An append puts what it writes into each recipient's queue in the same commit, as
// one range that takes the queue's next seqs; what it skips (a repeated client id) or
// cannot write (a stale version) reaches no queue.
func TestAppendFillsRecipientQueues(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	ab, ac := []string{"alice", "bob"}, []string{"alice", "carol"}
	appendTo := func(conv string, expected uint64, to []string, ms ...*parleypb.Message) (persistence.ConversationAppended, error) {
		return s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: expected,
			Messages: ms, Recipients: to})
	}
	res, err := appendTo("dm:alice:bob", 0, ab, msg("dm:alice:bob", "alice", "1", 10), msg("dm:alice:bob", "bob", "1", 11))
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"alice": 2, "bob": 2}, res.LastSeq)
	res, err = appendTo("dm:alice:carol", 0, ac, msg("dm:alice:carol", "carol", "1", 20))
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"alice": 3, "carol": 1}, res.LastSeq)

	// A repeated client id is skipped: only the new message takes a seq.
	res, err = appendTo("dm:alice:bob", 2, ab, msg("dm:alice:bob", "alice", "1", 30), msg("dm:alice:bob", "alice", "2", 31))
	require.NoError(t, err)
	require.Equal(t, []int64{31}, res.Inserted)
	require.Equal(t, map[string]uint64{"alice": 4, "bob": 3}, res.LastSeq)
	// Nothing new: no queue moves.
	res, err = appendTo("dm:alice:bob", 3, ab, msg("dm:alice:bob", "alice", "2", 40))
	require.NoError(t, err)
	require.Empty(t, res.LastSeq)
	// A stale writer writes nothing, queues included.
	_, err = appendTo("dm:alice:bob", 1, ab, msg("dm:alice:bob", "alice", "3", 50))
	require.ErrorIs(t, err, persistence.ErrConflict)

	require.Equal(t, []int64{10, 11, 20, 31}, queueIDs(t, mustQueue(t, s, "alice", 0), 1))
	require.Equal(t, []int64{10, 11, 31}, queueIDs(t, mustQueue(t, s, "bob", 0), 1))
	require.Equal(t, []int64{20}, queueIDs(t, mustQueue(t, s, "carol", 0), 1))
	require.Equal(t, uint64(4), mustQueue(t, s, "alice", 0).End)

	// Pages start and end inside a range.
	var five []*parleypb.Message
	for i := range 5 {
		five = append(five, msg("dm:alice:bob", "bob", fmt.Sprint("f", i), int64(60+i)))
	}
	_, err = appendTo("dm:alice:bob", 3, ab, five...)
	require.NoError(t, err)
	page, err := s.ReadQueue(ctx, "bob", 4, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{61, 62}, queueIDs(t, page, 5))
	require.Equal(t, uint64(8), page.End)
	page, err = s.ReadQueue(ctx, "bob", 8, 10)
	require.NoError(t, err)
	require.Empty(t, page.Entries)
	require.Equal(t, uint64(8), page.End)

	// The first page of a connection reads from the device's cursor in the same query.
	done := make(chan error, 1)
	s.SaveCursor("bob", "d1", 6, nil, func(err error) { done <- err })
	require.NoError(t, <-done)
	page, err = s.ReadQueueAtCursor(ctx, "bob", "d1", 10)
	require.NoError(t, err)
	require.Equal(t, uint64(6), page.Cursor)
	require.Equal(t, []int64{63, 64}, queueIDs(t, page, 7))
	page, err = s.ReadQueueAtCursor(ctx, "bob", "new-device", 1)
	require.NoError(t, err)
	require.Zero(t, page.Cursor)
	require.Equal(t, []int64{10}, queueIDs(t, page, 1))
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
	page, more, err := s.History(ctx, conv, 0, 200, 100)
	require.NoError(t, err)
	require.Len(t, page, 5, "the messages above after")
	require.False(t, more)
}

func TestCursorsOnlyMoveForward(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	for _, c := range []struct {
		device string
		cursor uint64
	}{{"d1", 5}, {"d1", 3}, {"d2", 7}} {
		require.NoError(t, saveCursor(s, "bob", c.device, c.cursor))
	}
	c, err := s.Cursors(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"d1": 5, "d2": 7}, c)
}

func saveCursor(s *postgres.Store, user, device string, cursor uint64) error {
	done := make(chan error, 1)
	s.SaveCursor(user, device, cursor, nil, func(err error) { done <- err })
	return <-done
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

// Commits running side by side take their row locks in one order (every stream a
// commit writes, recipients' queues included, is locked first in key order), so
// appends that reach the same queues in different orders never deadlock, and every
// queue stays gapless with each message once.
func TestConcurrentCommitsDoNotDeadlock(t *testing.T) {
	// Four committers, so that commits do run side by side (as they do across nodes).
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t), postgres.Options{Committers: 4})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	users := []string{"u0", "u1", "u2", "u3"}
	for _, u := range users { // a user's queue stream row is made with the user
		require.NoError(t, s.CreateUser(ctx, persistence.User{ID: u, DisplayName: u, PasswordHash: "x"}))
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprint("group:w", w)
			recipients := []string{users[w%4], users[(w+1)%4], users[(w+2)%4]} // each its own order
			var version uint64
			for i := range 30 {
				res, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: version,
					Messages: []*parleypb.Message{msg(conv, "u0", fmt.Sprint(i), int64(w*1000+i+1))}, Recipients: recipients})
				if err != nil {
					t.Error(err)
					return
				}
				version = res.Version
			}
		}()
	}
	wg.Wait()
	for _, u := range users {
		q := mustQueue(t, s, u, 0)
		require.Len(t, q.Entries, 8*30*3/4, u)
		seen := map[int64]bool{}
		for _, id := range queueIDs(t, q, 1) {
			require.False(t, seen[id], "%s has %d twice", u, id)
			seen[id] = true
		}
	}
}
