package postgres_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

// openGathering opens a store with one committer that gathers for a long while, so
// that what is submitted together shares a commit, and metrics to see it.
func openGathering(t *testing.T) (*postgres.Store, *metrics.Metrics) {
	t.Helper()
	m := metrics.New()
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t),
		postgres.Options{Committers: 1, BatchDelay: 300 * time.Millisecond, BatchMax: 1000, Metrics: m})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, m
}

// largestCommit is the most ops one commit has carried, read from the metrics the
// way a scraper does (the upper bound of the highest non-empty ops bucket).
func largestCommit(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(w.Body.String()))
	require.NoError(t, err)
	h := families["parley_commit_ops"].Metric[0].GetHistogram()
	largest, prev := 0.0, uint64(0)
	for _, b := range h.Bucket {
		if b.GetCumulativeCount() > prev {
			largest = b.GetUpperBound()
		}
		prev = b.GetCumulativeCount()
	}
	return largest
}

// One commit carries appends to many streams in one statement per kind; a stream
// appended twice in it is written in a second round, so exactly one of two writers
// expecting the same version wins, as when they commit apart; one op's conflict fails
// no other op; and a queue reached by several appends of the commit takes their
// messages in consecutive seqs.
func TestOneCommitManyStreams(t *testing.T) {
	s, m := openGathering(t)
	ctx := context.Background()
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
				Recipients: []string{"a", fmt.Sprint("b", i)},
				Messages:   []*parleypb.Message{msg(conv, "a", "c1", int64(100+2*i)), msg(conv, "a", "c2", int64(101+2*i))}})
			return err
		})
	}
	rivals := make([]*error, 2)
	for w := range rivals {
		rivals[w] = run(func() error {
			_, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: "dm:a:rival",
				Recipients: []string{"a", "rival"},
				Messages:   []*parleypb.Message{msg("dm:a:rival", "a", fmt.Sprint("x", w), int64(1000*(w+1)))}})
			return err
		})
	}
	wg.Wait()
	require.GreaterOrEqual(t, largestCommit(t, m), float64(streams), "the appends shared a commit")

	for i, err := range convErrs {
		require.NoError(t, *err, "stream %d", i)
		conv := fmt.Sprintf("dm:a:b%d", i)
		v, last, err := s.ConversationHead(ctx, conv)
		require.NoError(t, err)
		require.Equal(t, uint64(2), v, conv)
		require.Equal(t, int64(101+2*i), last, conv)
		q := mustQueue(t, s, fmt.Sprint("b", i), 0)
		require.Equal(t, []int64{int64(100 + 2*i), int64(101 + 2*i)}, queueIDs(t, q, 1))
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
	require.Len(t, mustQueue(t, s, "rival", 0).Entries, 1)
	// "a" got two messages from each of the 50 conversations and one from the rival.
	require.Len(t, queueIDs(t, mustQueue(t, s, "a", 0), 1), 2*streams+1)
}

// A commit that fails on bad data fails only the op that carries it: a NUL byte in a
// client id (PostgreSQL refuses it in text) among 100 good appends in one commit fails
// alone, stores nothing of itself, and the other 100 commit.
func TestPoisonedOpFailsAlone(t *testing.T) {
	s, _ := openGathering(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 101)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("dm:p:q%d", i)
			client := "ok"
			if i == 50 {
				client = "bad\x00id"
			}
			_, errs[i] = s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv,
				Recipients: []string{"p", fmt.Sprint("q", i)},
				Messages:   []*parleypb.Message{msg(conv, "p", "first", int64(10*i+1)), msg(conv, "p", client, int64(10*i+2))}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i == 50 {
			require.Error(t, err)
			continue
		}
		require.NoError(t, err, "append %d", i)
	}
	v, _, err := s.ConversationHead(ctx, "dm:p:q50")
	require.NoError(t, err)
	require.Zero(t, v, "nothing of the failed op is stored")
	require.Empty(t, mustQueue(t, s, "q50", 0).Entries)
	require.Len(t, mustQueue(t, s, "p", 0).Entries, 200, "the others' messages, all in p's queue")
}

// Writes submitted after Close fail with ErrClosed; they never panic.
func TestWriteAfterCloseFails(t *testing.T) {
	s, err := postgres.Open(context.Background(), testenv.DatabaseURL(t), postgres.Options{})
	require.NoError(t, err)
	s.Close()
	_, err = s.AppendConversation(context.Background(), persistence.ConversationAppend{Conversation: "dm:a:b",
		Messages: []*parleypb.Message{msg("dm:a:b", "a", "1", 1)}})
	require.ErrorIs(t, err, postgres.ErrClosed)
	require.ErrorIs(t, saveCursor(s, "a", "d", 1), postgres.ErrClosed)
}
