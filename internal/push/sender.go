package push

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/persistence"
)

// Store is what a Sender needs of the store; *postgres.Store satisfies it.
type Store interface {
	// ClaimPushes takes up to limit notifications due, held for claim, and says
	// how many it cancelled instead (their user is connected).
	ClaimPushes(ctx context.Context, limit int, claim time.Duration) ([]persistence.PushDue, int, error)
	// FinishPush records an outcome; next is when to retry (store-clock Unix ms).
	FinishPush(ctx context.Context, p persistence.PushDue, outcome persistence.PushOutcome, next int64) error
}

// Sender sends the notifications the store's outbox has due, with up to
// cfg.Workers at once: it polls every cfg.Poll (at once again while it finds a
// full batch), and retries a failed send with exponential backoff and jitter until
// cfg.Deadline from the notification's first message. Every node runs one; the
// store's claim keeps two from sending the same notification.
type Sender struct {
	store     Store
	providers map[string]Provider
	cfg       config.Push
	met       *metrics.Metrics
	log       *slog.Logger
	jitter    func() float64 // in [0, 1)
}

// NewSender returns a Sender over providers (by provider name).
func NewSender(store Store, providers map[string]Provider, cfg config.Push, met *metrics.Metrics, log *slog.Logger) *Sender {
	return &Sender{store: store, providers: providers, cfg: cfg, met: met, log: log, jitter: rand.Float64}
}

// Run sends until ctx ends, then waits for the sends under way (each bounded by
// cfg.Timeout).
func (s *Sender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.cfg.Workers)
	freed := make(chan struct{}, 1) // a send ended
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		// Claim in batches: once half the workers (at least one) are free.
		for cap(slots)-len(slots) < max(1, cap(slots)/2) {
			select {
			case <-ctx.Done():
				return
			case <-freed:
			}
		}
		free := cap(slots) - len(slots)
		due, cancelled, err := s.store.ClaimPushes(ctx, free, s.cfg.Claim)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("push: claiming notifications", slog.Any("error", err))
		}
		s.met.Push(metrics.PushCancelled, cancelled)
		for _, p := range due {
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() {
					<-slots
					wg.Done()
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
				s.send(context.WithoutCancel(ctx), p)
			}()
		}
		if len(due) == free && ctx.Err() == nil {
			continue // more may be due: claim again as workers free up
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// send tries one claimed notification and records what became of it; it is
// counted once that is stored (else the claim runs out and it is tried again).
func (s *Sender) send(ctx context.Context, p persistence.PushDue) {
	start := time.Now()
	var events []metrics.PushEvent
	if p.Attempts == 0 && p.Count > 0 {
		events = append(events, metrics.PushDecided)
	}
	outcome, next, err := s.try(ctx, p)
	switch outcome {
	case persistence.PushSent:
		events = append(events, metrics.PushSent)
	case persistence.PushRetry:
		next += time.Since(start).Milliseconds() // p.Now was the store's clock at the claim
		if next > p.CreatedAt+s.cfg.Deadline.Milliseconds() {
			outcome = persistence.PushDropped
			events = append(events, metrics.PushFailed)
			s.log.Warn("push: giving up past the deadline", slog.String("user", p.User), slog.String("device", p.Device),
				slog.Int("attempts", p.Attempts+1), slog.Any("error", err))
			break
		}
		events = append(events, metrics.PushRetried)
	case persistence.PushDisabled:
		events = append(events, metrics.PushDisabled)
		s.log.Info("push: target no longer valid; disabled", slog.String("user", p.User), slog.String("device", p.Device),
			slog.String("provider", p.Provider), slog.Any("error", err))
	case persistence.PushDropped:
		events = append(events, metrics.PushFailed)
		s.log.Warn("push: not sent", slog.String("user", p.User), slog.String("device", p.Device),
			slog.String("provider", p.Provider), slog.Any("error", err))
	}
	fctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.store.FinishPush(fctx, p, outcome, next); err != nil {
		// The claim runs out and the notification is tried again (a repeat, with the
		// same id, if it was sent).
		s.log.Warn("push: recording the outcome", slog.String("user", p.User), slog.Any("error", err))
		return
	}
	for _, e := range events {
		s.met.Push(e, 1)
	}
}

// try sends p once: the outcome, and for PushRetry when (store-clock Unix ms, as
// of the claim).
func (s *Sender) try(ctx context.Context, p persistence.PushDue) (persistence.PushOutcome, int64, error) {
	prov := s.providers[p.Provider]
	switch {
	case p.Provider == "" || p.Latest == nil || p.Count == 0:
		return persistence.PushEmpty, 0, nil // the target was removed, or nothing is left to tell
	case prov == nil:
		return persistence.PushDropped, 0, fmt.Errorf("provider %q is not configured on this node", p.Provider)
	}
	cx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	err := prov.Send(cx, Target{Provider: p.Provider, Token: p.Token}, s.notification(p))
	if err == nil {
		return persistence.PushSent, 0, nil
	}
	switch kind, after := KindOf(err); kind {
	case Gone:
		return persistence.PushDisabled, 0, err
	case Drop:
		return persistence.PushDropped, 0, err
	default:
		return persistence.PushRetry, p.Now + max(s.backoff(p.Attempts), after).Milliseconds(), err
	}
}

// backoff is the wait after the attempts+1-th failure: BackoffMin doubled per
// failure before, capped at BackoffMax, and drawn in [½, 1] of that.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.cfg.BackoffMin
	for i := 0; i < attempts && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.BackoffMax)
	return d/2 + time.Duration(s.jitter()*float64(d/2))
}

func (s *Sender) notification(p persistence.PushDue) Notification {
	m := p.Latest
	n := Notification{ID: fmt.Sprintf("%s/%s/%d", p.User, p.Device, m.MessageId), User: p.User, Device: p.Device,
		Conversation: m.Conversation, MessageID: m.MessageId, From: m.From, Count: p.Count, Unread: p.Unread, Ts: m.Ts}
	if s.cfg.Preview {
		n.Preview = clip(m.Text, s.cfg.PreviewBytes)
	}
	return n
}

// clip cuts s to at most n bytes, at a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
