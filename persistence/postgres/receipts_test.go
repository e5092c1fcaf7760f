package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

// moveCursor saves a cursor move with the delivered watermarks given as
// conversation, id pairs.
func moveCursor(t *testing.T, s *postgres.Store, user, device string, cursor uint64, marks ...any) {
	t.Helper()
	var in []persistence.ReceiptMove
	for i := 0; i < len(marks); i += 2 {
		in = append(in, persistence.ReceiptMove{Conversation: marks[i].(string), User: user, Status: persistence.Delivered,
			UpTo: int64(marks[i+1].(int))})
	}
	done := make(chan error, 1)
	s.SaveCursor(user, device, cursor, in, func(err error) { done <- err })
	require.NoError(t, <-done)
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

// Delivered watermarks move only forward; a read is of a message of the conversation after the floor only, moves only
// forward, implies delivered, and names the senders it is news to.
func TestReceiptWatermarks(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	alice, bob, carol := "rca", "rcb", "rcc"
	ab, ac := "dm:"+alice+":"+bob, "dm:"+alice+":"+carol
	appendTo := func(conv string, expected uint64, to []string, ms ...*parleypb.Message) {
		t.Helper()
		_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: expected,
			Messages: ms, Recipients: to})
		require.NoError(t, err)
	}
	appendTo(ab, 0, []string{alice, bob}, msg(ab, bob, "1", 101), msg(ab, bob, "2", 102), msg(ab, bob, "3", 103))
	appendTo(ac, 0, []string{alice, carol}, msg(ac, carol, "1", 201))
	appendTo(ab, 3, []string{alice, bob}, msg(ab, alice, "1", 104))

	moveCursor(t, s, alice, "d1", 2, ab, 102)
	require.Equal(t, map[string][2]int64{alice: {102, 0}}, watermarks(t, s, ab))
	moveCursor(t, s, alice, "d1", 5, ab, 104, ac, 201)
	// Another device, behind or at the watermark: nothing moves back.
	moveCursor(t, s, alice, "d2", 5, ab, 103, ac, 201)
	require.Equal(t, map[string][2]int64{alice: {104, 0}}, watermarks(t, s, ab))
	require.Equal(t, map[string][2]int64{alice: {201, 0}}, watermarks(t, s, ac))
	c, err := s.Cursors(ctx, alice)
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"d1": 5, "d2": 5}, c, "the cursors move with them")

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
	require.Equal(t, map[string][2]int64{alice: {104, 103}, bob: {104, 104}}, watermarks(t, s, ab), "read implies delivered")
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

	moveCursor(t, s, m1, "d", 1, conv, 20)
	d, r := persistence.ByAll(mustReceipts(t, s, conv), owner)
	require.Equal(t, [2]int64{20, 10}, [2]int64{d, r}, "m2 joined after 20: it does not hold delivered back")

	event(3, &parleypb.GroupEvent{Kind: parleypb.GroupEvent_MEMBER_REMOVED, EventId: 40, By: m1, User: m1})
	require.Equal(t, map[string][2]int64{owner: {10, 10}, m2: {30, 30}}, watermarks(t, s, conv))
	_, err = markRead(t, s, m1, conv, 20, 10)
	require.NoError(t, err)
	require.NotContains(t, watermarks(t, s, conv), m1, "a member that left gets no row back from a read")
	moveCursor(t, s, m1, "d2", 1, conv, 20)
	require.NotContains(t, watermarks(t, s, conv), m1, "nor from a delivery")
}

func mustReceipts(t *testing.T, s *postgres.Store, conv string) []persistence.Watermark {
	t.Helper()
	ws, err := s.Receipts(context.Background(), conv)
	require.NoError(t, err)
	return ws
}

// The side commit (cursors, receipts) does not wait for its WAL flush; the
// messages' commit does.
func TestSideCommitIsAsynchronous(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	v, err := s.CommitSettingForTest(ctx, true, "synchronous_commit")
	require.NoError(t, err)
	require.Equal(t, "off", v)
	v, err = s.CommitSettingForTest(ctx, false, "synchronous_commit")
	require.NoError(t, err)
	require.Equal(t, "on", v, "messages are answered sent only once on disk")
}

// Reads of direct conversations checked by the connection ride with the cursor
// (Status Read): only forward, implying delivered, never into a group's rows, and
// a move with cursor 0 writes no cursor.
func TestReadMarksWithTheCursor(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	alice, bob := "rma", "rmb"
	ab := "dm:" + alice + ":" + bob
	save := func(cursor uint64, marks ...persistence.ReceiptMove) {
		t.Helper()
		done := make(chan error, 1)
		s.SaveCursor(bob, "d1", cursor, marks, func(err error) { done <- err })
		require.NoError(t, <-done)
	}
	read := func(conv string, upTo int64) persistence.ReceiptMove {
		return persistence.ReceiptMove{Conversation: conv, User: bob, Status: persistence.Read, UpTo: upTo}
	}
	save(0, read(ab, 50))
	require.Equal(t, map[string][2]int64{bob: {50, 50}}, watermarks(t, s, ab), "read implies delivered")
	c, err := s.Cursors(ctx, bob)
	require.NoError(t, err)
	require.Empty(t, c, "no cursor moved")
	save(3, read(ab, 40), persistence.ReceiptMove{Conversation: ab, User: bob, Status: persistence.Delivered, UpTo: 60})
	require.Equal(t, map[string][2]int64{bob: {60, 50}}, watermarks(t, s, ab), "a read behind moves nothing back")
	save(4, read(ab, 70), read("group:rmg", 70))
	require.Equal(t, map[string][2]int64{bob: {70, 70}}, watermarks(t, s, ab))
	require.Empty(t, watermarks(t, s, "group:rmg"), "no unchecked read of a group")
	c, err = s.Cursors(ctx, bob)
	require.NoError(t, err)
	require.Equal(t, map[string]uint64{"d1": 4}, c)
}
