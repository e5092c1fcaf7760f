package postgres_test

import (
	"context"
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

// One commit carries appends to many streams in one statement per kind; a stream
// appended twice in it is written in a second round, so exactly one of two writers
// expecting the same version wins, as when they commit apart; an entry already in a
// queue is skipped; one op's conflict fails no other op.
func TestOneCommitManyStreams(t *testing.T) {
	// One committer that gathers for a long while: what is submitted together shares a commit.
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t),
		postgres.Options{Committers: 1, BatchDelay: 300 * time.Millisecond, BatchMax: 1000})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	_, err = s.AppendUser(ctx, persistence.UserAppend{User: "dup", Messages: []*parleypb.Message{msg("dm:a:dup", "a", "x", 7)}})
	require.NoError(t, err)

	const streams = 50
	var wg sync.WaitGroup
	run := func(f func() error) *error {
		var err error
		wg.Add(1)
		go func() { defer wg.Done(); err = f() }()
		return &err
	}
	convErrs := make([]*error, streams)
	for i := range streams {
		conv := fmt.Sprintf("dm:a:b%d", i)
		convErrs[i] = run(func() error {
			_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv,
				Messages: []*parleypb.Message{msg(conv, "a", "c1", int64(100+2*i)), msg(conv, "a", "c2", int64(101+2*i))}})
			return err
		})
	}
	rivals := make([]*error, 2)
	for w := range rivals {
		rivals[w] = run(func() error {
			_, err := s.AppendUser(ctx, persistence.UserAppend{User: "rival",
				Messages: []*parleypb.Message{msg("dm:a:rival", "a", "x", int64(1000*(w+1)))}})
			return err
		})
	}
	var dup persistence.UserAppended
	dupErr := run(func() (err error) {
		dup, err = s.AppendUser(ctx, persistence.UserAppend{User: "dup", Expected: 1,
			Messages: []*parleypb.Message{msg("dm:a:dup", "a", "x", 7), msg("dm:a:dup", "a", "y", 8)}})
		return err
	})
	cursorErrs := []*error{
		run(func() error { return s.SaveCursor(ctx, "dup", "d1", 5) }),
		run(func() error { return s.SaveCursor(ctx, "dup", "d1", 3) }),
	}
	wg.Wait()

	for i, err := range convErrs {
		require.NoError(t, *err, "stream %d", i)
		conv := fmt.Sprintf("dm:a:b%d", i)
		v, err := s.ConversationVersion(ctx, conv)
		require.NoError(t, err)
		require.Equal(t, uint64(2), v, conv)
		last, err := s.LastMessageID(ctx, conv)
		require.NoError(t, err)
		require.Equal(t, int64(101+2*i), last, conv)
	}
	wins := 0
	for _, err := range rivals {
		if *err == nil {
			wins++
		} else {
			require.ErrorIs(t, *err, persistence.ErrConflict)
		}
	}
	require.Equal(t, 1, wins)
	q, err := s.ReadQueue(ctx, "rival", 0, 10)
	require.NoError(t, err)
	require.Len(t, q, 1)

	require.NoError(t, *dupErr)
	require.Equal(t, uint64(2), dup.Version)
	require.Len(t, dup.Entries, 1)
	require.Equal(t, int64(8), dup.Entries[0].MessageId)
	require.Equal(t, uint64(2), dup.Entries[0].Seq)

	for _, err := range cursorErrs {
		require.NoError(t, *err)
	}
	c, err := s.Cursors(ctx, "dup")
	require.NoError(t, err)
	require.Equal(t, uint64(5), c["d1"])
}

// A commit is all or nothing: when one of its statements fails, the other ops of the
// commit are not stored either, and all of them hear the error.
func TestCommitIsAllOrNothing(t *testing.T) {
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t),
		postgres.Options{Committers: 1, BatchDelay: 300 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	var wg sync.WaitGroup
	var badErr, goodErr error
	wg.Add(2)
	go func() {
		defer wg.Done() // two messages with one id: the conversation statement fails
		_, badErr = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: "dm:a:bad",
			Messages: []*parleypb.Message{msg("dm:a:bad", "a", "c1", 5), msg("dm:a:bad", "a", "c2", 5)}})
	}()
	go func() {
		defer wg.Done()
		_, goodErr = s.AppendUser(ctx, persistence.UserAppend{User: "bystander",
			Messages: []*parleypb.Message{msg("dm:a:b", "a", "x", 9)}})
	}()
	wg.Wait()
	require.Error(t, badErr)
	require.Error(t, goodErr, "the op that shared the failed commit hears its error")
	q, err := s.ReadQueue(ctx, "bystander", 0, 10)
	require.NoError(t, err)
	require.Empty(t, q, "nothing of the failed commit is stored")
	v, err := s.UserVersion(ctx, "bystander")
	require.NoError(t, err)
	require.Zero(t, v)

	// The grain tries again in a commit of its own, and it is stored.
	res, err := s.AppendUser(ctx, persistence.UserAppend{User: "bystander",
		Messages: []*parleypb.Message{msg("dm:a:b", "a", "x", 9)}})
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.Version)
}
