package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

func moveCursor(t *testing.T, s *postgres.Store, user, device string, from, to uint64) []persistence.ReceiptMove {
	t.Helper()
	type result struct {
		moves []persistence.ReceiptMove
		err   error
	}
	done := make(chan result, 1)
	s.SaveCursor(user, device, from, to, func(m []persistence.ReceiptMove, err error) { done <- result{m, err} })
	r := <-done
	require.NoError(t, r.err)
	return r.moves
}

func markRead(t *testing.T, s *postgres.Store, user, conv string, upTo, floor int64) (*persistence.ReceiptMove, error) {
	t.Helper()
	type result struct {
		move *persistence.ReceiptMove
		err  error
	}
	done := make(chan result, 1)
	s.SaveRead(user, conv, upTo, floor, func(m *persistence.ReceiptMove, err error) { done <- result{m, err} })
	r := <-done
	return r.move, r.err
}

func watermarks(t *testing.T, s *postgres.Store, conv string) map[string][2]int64 {
	t.Helper()
	ws, err := s.Receipts(context.Background(), conv)
	require.NoError(t, err)
	out := map[string][2]int64{}
	for _, w := range ws {
		out[w.User] = [2]int64{w.Delivered, w.Read}
	}
	return out
}

// A cursor move gives a delivered receipt per conversation it covers, at the
// highest message id below the new cursor (inside a range, too), and names the
// senders it is news to; receipts only move forward, and read implies delivered.
func TestDeliveredReceiptsFromCursorMoves(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	p := "rc"
	alice, bob, carol := p+"a", p+"b", p+"c"
	ab, ac := "dm:"+alice+":"+bob, "dm:"+alice+":"+carol
	appendTo := func(conv string, expected uint64, to []string, ms ...*parleypb.Message) {
		t.Helper()
		_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: expected,
			Messages: ms, Recipients: to})
		require.NoError(t, err)
	}
	// alice's queue: 1-3 from bob (one range of three), 4 from carol, 5 her own to bob.
	appendTo(ab, 0, []string{alice, bob}, msg(ab, bob, "1", 101), msg(ab, bob, "2", 102), msg(ab, bob, "3", 103))
	appendTo(ac, 0, []string{alice, carol}, msg(ac, carol, "1", 201))
	appendTo(ab, 3, []string{alice, bob}, msg(ab, alice, "1", 104))

	// Up to 2 cuts bob's range: the receipt is at its second message, news to bob.
	moves := moveCursor(t, s, alice, "d1", 0, 2)
	require.Equal(t, []persistence.ReceiptMove{{Conversation: ab, User: alice, Status: persistence.Delivered,
		UpTo: 102, Senders: []string{bob}}}, moves)
	// Up to 5: both conversations; alice's own message moves her watermark but
	// tells no one of it but bob, whose message 103 it covers.
	moves = moveCursor(t, s, alice, "d1", 2, 5)
	require.ElementsMatch(t, []persistence.ReceiptMove{
		{Conversation: ab, User: alice, Status: persistence.Delivered, UpTo: 104, Senders: []string{bob}},
		{Conversation: ac, User: alice, Status: persistence.Delivered, UpTo: 201, Senders: []string{carol}},
	}, moves)
	// Another device acknowledging the same: nothing moves, nothing to tell.
	require.Empty(t, moveCursor(t, s, alice, "d2", 0, 5))
	require.Equal(t, map[string][2]int64{alice: {104, 0}}, watermarks(t, s, ab))

	// Read: of a message of the conversation only, and only forward; it moves
	// delivered too.
	m, err := markRead(t, s, alice, ab, 103, 0)
	require.NoError(t, err)
	require.Equal(t, &persistence.ReceiptMove{Conversation: ab, User: alice, Status: persistence.Read, UpTo: 103,
		Senders: []string{bob}}, m)
	m, err = markRead(t, s, alice, ab, 102, 0)
	require.NoError(t, err)
	require.Nil(t, m, "a read behind the watermark moves nothing")
	_, err = markRead(t, s, alice, ab, 999, 0)
	require.ErrorIs(t, err, persistence.ErrNotFound, "no such message")
	_, err = markRead(t, s, alice, ab, 201, 0)
	require.ErrorIs(t, err, persistence.ErrNotFound, "a message of another conversation")
	_, err = markRead(t, s, alice, ab, 104, 104)
	require.ErrorIs(t, err, persistence.ErrNotFound, "a message before the floor")
	require.Equal(t, map[string][2]int64{alice: {104, 103}}, watermarks(t, s, ab))
	m, err = markRead(t, s, bob, ab, 104, 0)
	require.NoError(t, err)
	require.Equal(t, []string{alice}, m.Senders)
	require.Equal(t, map[string][2]int64{alice: {104, 103}, bob: {104, 104}}, watermarks(t, s, ab))
}

// A group's receipts rows are its members': written at the join event, deleted at
// the leave; a receipt moves only a member's row, so "by all" is the minimum over
// the rows.
func TestGroupReceiptsFollowMembership(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	p := "rg"
	owner, m1, m2 := p+"o", p+"1", p+"2"
	conv := "group:" + p
	event := func(expected uint64, e *parleypb.GroupEvent) {
		t.Helper()
		e.Ts = e.EventId
		_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: expected, Event: e})
		require.NoError(t, err)
	}
	event(0, &parleypb.GroupEvent{Kind: parleypb.GroupEvent_CREATED, EventId: 10, By: owner, User: owner, Name: "g",
		Members: []string{m1}})
	require.Equal(t, map[string][2]int64{owner: {10, 10}, m1: {10, 10}}, watermarks(t, s, conv))
	_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: 1,
		Messages: []*parleypb.Message{msg(conv, owner, "1", 20)}, Recipients: []string{owner, m1}})
	require.NoError(t, err)
	event(2, &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_ADDED, EventId: 30, By: owner, User: m2})
	require.Equal(t, map[string][2]int64{owner: {10, 10}, m1: {10, 10}, m2: {30, 30}}, watermarks(t, s, conv))

	moves := moveCursor(t, s, m1, "d", 0, 1)
	require.Equal(t, []string{owner}, moves[0].Senders)
	d, r := persistence.ByAll(mustReceipts(t, s, conv), owner)
	require.Equal(t, [2]int64{20, 10}, [2]int64{d, r}, "m2 joined after 20: it does not hold delivered back")

	event(3, &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_REMOVED, EventId: 40, By: m1, User: m1})
	require.Equal(t, map[string][2]int64{owner: {10, 10}, m2: {30, 30}}, watermarks(t, s, conv))
	_, err = markRead(t, s, m1, conv, 20, 10)
	require.NoError(t, err)
	require.NotContains(t, watermarks(t, s, conv), m1, "a member that left gets no row back from a read")
	require.Empty(t, moveCursor(t, s, m1, "d2", 0, 1))
	require.NotContains(t, watermarks(t, s, conv), m1, "nor from a delivery")
}

func mustReceipts(t *testing.T, s *postgres.Store, conv string) []persistence.Watermark {
	t.Helper()
	ws, err := s.Receipts(context.Background(), conv)
	require.NoError(t, err)
	return ws
}
