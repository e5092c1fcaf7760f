package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

func wait(t *testing.T, f func(done func(error))) {
	t.Helper()
	res := make(chan error, 1)
	f(func(err error) { res <- err })
	require.NoError(t, <-res)
}

// outboxRow is where a device's push outbox row starts in its queue, and whether
// it has one.
func outboxRow(t *testing.T, s *postgres.Store, user, device string) (from int64, ok bool) {
	t.Helper()
	err := s.QueryRowForTest(context.Background(), `SELECT COALESCE((SELECT from_seq FROM push_outbox
		WHERE user_id = $1 AND device_id = $2), 0)`, user, device).Scan(&from)
	require.NoError(t, err)
	return from, from > 0
}

// The commit that queues a message writes a push only for a recipient with a live
// push target, no connected device and the conversation not muted, never for the
// message's sender; later messages collapse into the same row.
func TestPushDecidedInTheCommit(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u := mustUsers(t, s, "p", 2)
	a, b := u[0], u[1]
	conv := convid.DirectID(a, b)
	future := time.Now().Add(time.Hour).UnixMilli()
	for _, x := range u {
		require.NoError(t, s.SetPushTarget(ctx, x, "phone", "webhook", x+"-token", future, true))
	}
	require.ErrorIs(t, s.SetPushTarget(ctx, a, "tablet", "webhook", "t", future, false), persistence.ErrNotFound,
		"another device of the caller must exist")
	node, err := s.AcquireNodeID(ctx, testenv.Name("node"), -1, time.Minute)
	require.NoError(t, err)

	version, next := uint64(0), int64(1000)
	post := func(from string) int64 {
		next++
		res, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: version,
			Messages: []*parleypb.Message{msg(conv, from, fmt.Sprint("c", next), next)}, Recipients: u})
		require.NoError(t, err)
		version = res.Version
		return next
	}

	fromSeq := func(user string) int64 {
		from, _ := outboxRow(t, s, user, "phone")
		return from
	}
	post(a) // b's queue entry 1
	require.Equal(t, int64(1), fromSeq(b))
	require.Zero(t, fromSeq(a), "the sender is not pushed for its own message")
	post(a) // 2
	require.Equal(t, int64(1), fromSeq(b), "collapsed: the row still starts at the first")

	// b comes online: what waited is cancelled, and nothing more is written.
	wait(t, func(done func(error)) { s.SetOnline(b, node.Holder, true, 1, done) })
	require.Zero(t, fromSeq(b), "coming online cancels what waited")
	post(a) // 3
	require.Zero(t, fromSeq(b), "b is connected")

	// Its last connection goes, within the grace: the online row stays, pushes come.
	wait(t, func(done func(error)) { s.SetDisconnected(b, node.Holder, done) })
	post(a) // 4
	require.Equal(t, int64(4), fromSeq(b), "disconnected, though still shown online")

	// Muted: none.
	require.NoError(t, s.SetMuted(ctx, a, conv, true))
	post(b) // a's entry 5
	require.Zero(t, fromSeq(a), "a muted the conversation")
	require.NoError(t, s.SetMuted(ctx, a, conv, false))
	post(b) // 6
	require.Equal(t, int64(6), fromSeq(a), "unmuted")

	// A target whose session ended, or whose device logged out, gets none.
	require.NoError(t, s.ClearPushTarget(ctx, a, "phone"))
	require.Zero(t, fromSeq(a), "removing the target drops what waited")
	require.NoError(t, s.SetPushTarget(ctx, a, "phone", "webhook", "x", time.Now().Add(-time.Second).UnixMilli(), true))
	post(b) // 7
	require.Zero(t, fromSeq(a), "the target expired")
	require.NoError(t, s.AddDevice(ctx, a, "phone", future), "a new session of the device extends it")
	post(b) // 8
	require.Equal(t, int64(8), fromSeq(a))
	_, err = s.RevokeDevice(ctx, a, "phone")
	require.NoError(t, err)
	require.Zero(t, fromSeq(a), "logout drops what waited")
	post(b)
	require.Zero(t, fromSeq(a), "logout ends the target")
}

// Claims hand a due notification to one sender at a time; its outcome removes it,
// keeps the messages that came meanwhile, reschedules it, or disables the target.
func TestPushClaimAndFinish(t *testing.T) {
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t), postgres.Options{}) // gather 0: due at once
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	u := mustUsers(t, s, "q", 2)
	a, b := u[0], u[1]
	conv := convid.DirectID(a, b)
	require.NoError(t, s.SetPushTarget(ctx, b, "phone", "webhook", "tok", time.Now().Add(time.Hour).UnixMilli(), true))
	version, next := uint64(0), int64(5000)
	post := func(text string) int64 {
		next++
		m := msg(conv, a, fmt.Sprint("c", next), next)
		m.Text = text
		res, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: version,
			Messages: []*parleypb.Message{m}, Recipients: u})
		require.NoError(t, err)
		version = res.Version
		return next
	}
	// mine claims every due row, keeping those of this test's user.
	mine := func() []persistence.PushDue {
		due, _, err := s.ClaimPushes(ctx, 1000, time.Minute)
		require.NoError(t, err)
		var out []persistence.PushDue
		for _, p := range due {
			if p.User == b {
				out = append(out, p)
			}
		}
		return out
	}

	post("one")
	post("two")
	due := mine()
	require.Len(t, due, 1)
	p := due[0]
	require.Equal(t, "webhook", p.Provider)
	require.Equal(t, "tok", p.Token)
	require.Equal(t, 2, p.Count)
	require.Equal(t, int64(2), p.Unread, "b's queue has two entries past its cursor")
	require.Equal(t, "two", p.Latest.Text)
	require.Equal(t, [2]uint64{1, 2}, [2]uint64{p.FromSeq, p.EndSeq})
	require.Empty(t, mine(), "held by the claim")

	// Sent while a third message came: the third makes the next notification.
	post("three")
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushSent, 0))
	from, ok := outboxRow(t, s, b, "phone")
	require.True(t, ok)
	require.Equal(t, int64(3), from)

	// Muted conversations' entries are left out of the count and the preview.
	other := mustUsers(t, s, "q", 1)[0]
	muted := convid.DirectID(other, b)
	require.NoError(t, s.SetMuted(ctx, b, muted, true))
	_, err = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: muted,
		Messages: []*parleypb.Message{msg(muted, other, "m1", 9000)}, Recipients: []string{other, b}})
	require.NoError(t, err)
	p = mine()[0]
	require.Equal(t, 1, p.Count, "three, not the muted one")
	require.Equal(t, "three", p.Latest.Text)
	require.Equal(t, uint64(4), p.EndSeq)

	// Retry: due again at the time given, not before.
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushRetry, p.Now+60_000))
	require.Empty(t, mine(), "not due for a minute")
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushRetry, p.Now-1))
	p = mine()[0]
	require.Equal(t, 2, p.Attempts)

	// Sent with nothing after it: the row moves on past it. The next claim finds
	// nothing to tell; finished empty while an entry arrived, it moves on again,
	// and finished empty on a quiet queue, it goes.
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushSent, 0))
	from, ok = outboxRow(t, s, b, "phone")
	require.True(t, ok)
	require.Equal(t, int64(p.EndSeq)+1, from)
	p = mine()[0]
	require.Zero(t, p.Count)
	require.Nil(t, p.Latest)
	post("meanwhile")
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushEmpty, 0))
	from, ok = outboxRow(t, s, b, "phone")
	require.True(t, ok, "an entry came after the claim: the row stays")
	require.Equal(t, int64(p.EndSeq)+1, from)
	p = mine()[0]
	require.Equal(t, "meanwhile", p.Latest.Text)
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushSent, 0))
	p = mine()[0]
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushEmpty, 0))
	_, ok = outboxRow(t, s, b, "phone")
	require.False(t, ok, "quiet: the row goes")

	// Disabled with a token that was replaced meanwhile: the new target stays.
	post("four")
	p = mine()[0]
	require.NoError(t, s.SetPushTarget(ctx, b, "phone", "webhook", "tok2", time.Now().Add(time.Hour).UnixMilli(), true))
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushDisabled, 0))
	provider, token, err := s.PushTarget(ctx, b, "phone")
	require.NoError(t, err)
	require.Equal(t, "tok2", token, "the new registration is not the one that failed")
	require.Equal(t, "webhook", provider)
	due = mine()
	require.Len(t, due, 1, "the notification stays, for the new target")
	p = due[0]
	require.Equal(t, "tok2", p.Token)
	require.NoError(t, s.FinishPush(ctx, p, persistence.PushDisabled, 0))
	provider, _, err = s.PushTarget(ctx, b, "phone")
	require.NoError(t, err)
	require.Empty(t, provider, "disabled")
	_, ok = outboxRow(t, s, b, "phone")
	require.False(t, ok)
}
