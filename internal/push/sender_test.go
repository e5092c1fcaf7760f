package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// memOutbox is an in-memory outbox for the Sender's logic: due rows handed out
// once, outcomes recorded.
type memOutbox struct {
	mu       sync.Mutex
	due      []persistence.PushDue
	outcomes map[string]persistence.PushOutcome
	next     map[string]int64
	claims   int
}

func (m *memOutbox) ClaimPushes(_ context.Context, limit int, _ time.Duration) ([]persistence.PushDue, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims++
	n := min(limit, len(m.due))
	out := m.due[:n:n]
	m.due = m.due[n:]
	return out, 0, nil
}

func (m *memOutbox) FinishPush(_ context.Context, p persistence.PushDue, o persistence.PushOutcome, next int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.outcomes[p.Device], m.next[p.Device] = o, next
	return nil
}

func (m *memOutbox) finished() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.outcomes)
}

// provider answers Send with answer(n), counting calls.
type funcProvider struct {
	mu     sync.Mutex
	calls  int
	answer func(n Notification) error
}

func (p *funcProvider) Check(string) error { return nil }

func (p *funcProvider) Send(_ context.Context, _ Target, n Notification) error {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	return p.answer(n)
}

func testPushConfig() config.Push {
	c := config.Default().Push
	c.Poll = time.Hour // a test that needs the ticker fails
	c.Workers = 4
	return c
}

func due(device string, attempts int) persistence.PushDue {
	return persistence.PushDue{User: "bob", Device: device, Provider: Webhook, Token: "t",
		Latest: &parleypb.Message{MessageId: 42, Conversation: "dm:alice:bob", From: "alice", Text: "héllo there", Ts: 7},
		Count:  3, Unread: 5, Attempts: attempts, CreatedAt: 1_000_000, Now: 1_000_000}
}

func runSender(t *testing.T, store *memOutbox, p Provider, cfg config.Push, want int) *Sender {
	t.Helper()
	s := NewSender(store, map[string]Provider{Webhook: p}, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.jitter = func() float64 { return 0.5 }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for store.finished() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	require.Equal(t, want, store.finished(), "notifications finished")
	return s
}

// A busy Sender claims again as its workers free up, not at the next poll: with
// the poll an hour away, 100 notifications due are all sent.
func TestSenderDrainsWithoutThePoll(t *testing.T) {
	store := &memOutbox{outcomes: map[string]persistence.PushOutcome{}, next: map[string]int64{}}
	for i := range 100 {
		store.due = append(store.due, due(fmt.Sprint("d", i), 0))
	}
	p := &funcProvider{answer: func(Notification) error { time.Sleep(time.Millisecond); return nil }}
	runSender(t, store, p, testPushConfig(), 100)
	for d, o := range store.outcomes {
		require.Equal(t, persistence.PushSent, o, d)
	}
	require.Less(t, store.claims, 100, "claims come in batches, not one per push")
}

// Each provider answer becomes its outcome: Gone disables, Drop drops, Retry
// waits the backoff (at least Retry-After), and past the deadline drops.
func TestSenderOutcomes(t *testing.T) {
	cfg := testPushConfig()
	cfg.BackoffMin, cfg.BackoffMax, cfg.Deadline = time.Second, 8*time.Second, time.Minute
	late := due("late", 5)
	late.Now = late.CreatedAt + 59_000 // a retry would come after the deadline
	store := &memOutbox{outcomes: map[string]persistence.PushOutcome{}, next: map[string]int64{},
		due: []persistence.PushDue{due("ok", 0), due("gone", 0), due("drop", 0), due("retry0", 0), due("retry3", 3),
			due("after", 0), late}}
	p := &funcProvider{answer: func(n Notification) error {
		switch n.Device {
		case "gone":
			return &Error{Kind: Gone, Status: 410}
		case "drop":
			return &Error{Kind: Drop, Status: 400}
		case "retry0", "retry3", "late":
			return errors.New("connection refused")
		case "after":
			return &Error{Kind: Retry, Status: 429, RetryAfter: 30 * time.Second}
		}
		return nil
	}}
	runSender(t, store, p, cfg, 7)
	require.Equal(t, map[string]persistence.PushOutcome{"ok": persistence.PushSent, "gone": persistence.PushDisabled,
		"drop": persistence.PushDropped, "retry0": persistence.PushRetry, "retry3": persistence.PushRetry,
		"after": persistence.PushRetry, "late": persistence.PushDropped}, store.outcomes)
	at := func(d string) time.Duration { return time.Duration(store.next[d]-1_000_000) * time.Millisecond }
	// Jitter 0.5: three quarters of the doubled wait (plus the send's own few ms).
	require.InDelta(t, 750*time.Millisecond, at("retry0"), float64(100*time.Millisecond))
	require.InDelta(t, 6*time.Second, at("retry3"), float64(100*time.Millisecond), "1s doubled 3 times, capped at 8s")
	require.InDelta(t, 30*time.Second, at("after"), float64(100*time.Millisecond), "Retry-After wins over a shorter backoff")
}

func TestSenderNotification(t *testing.T) {
	cfg := testPushConfig()
	cfg.PreviewBytes = 2 // "h" and the first byte of "é": clipped before it
	var got Notification
	p := &funcProvider{answer: func(n Notification) error { got = n; return nil }}
	store := &memOutbox{outcomes: map[string]persistence.PushOutcome{}, next: map[string]int64{}, due: []persistence.PushDue{due("d", 0)}}
	runSender(t, store, p, cfg, 1)
	require.Equal(t, Notification{ID: "bob/d/42", User: "bob", Device: "d", Conversation: "dm:alice:bob", MessageID: 42,
		From: "alice", Preview: "h", Count: 3, Unread: 5, Ts: 7}, got)

	cfg.Preview = false
	store = &memOutbox{outcomes: map[string]persistence.PushOutcome{}, next: map[string]int64{}, due: []persistence.PushDue{due("d", 0)}}
	runSender(t, store, p, cfg, 1)
	require.Empty(t, got.Preview, "push.preview false sends no text")
}
