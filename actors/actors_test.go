//go:build !race

// These tests run a Proto.Actor cluster inside the test process, where the library's
// own data races (research/protoactor.md §7) fire under -race; `make test` runs them
// in a separate pass without -race. Parley's actor code is race-checked by the e2e
// tests, whose node processes are built with -race.

package actors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

type env struct {
	deps  *actors.Deps
	store *postgres.Store
}

// startGrains runs the grains in a real actor system and a one-member cluster, on a
// fresh database with the users given.
func startGrains(t testing.TB, idle time.Duration, users ...string) *env {
	t.Helper()
	ctx := context.Background()
	store, err := postgres.Open(ctx, testenv.DatabaseURL(t), postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	for _, u := range users {
		require.NoError(t, store.CreateUser(ctx, persistence.User{ID: u, DisplayName: u, PasswordHash: "x"}))
	}
	gen, err := ids.New(1)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := &actors.Deps{Store: store, IDs: gen, Log: log, Grains: actors.NewRegistry(), Settings: actors.Settings{
		RequestTimeout: 5 * time.Second, IdleTimeout: idle, SnapshotEvery: 1000, MaxTextBytes: 4096,
		SyncBatch: 500, HistoryMax: 100, HistoryDefault: 50, MaxGroupMembers: 500}}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	c := cluster.New(system, cluster.Configure("t", test.NewTestProvider(test.NewInMemAgent()), disthash.New(),
		remote.Configure("127.0.0.1", 0), cluster.WithKinds(actors.Kinds(deps)...)))
	deps.Cluster = c
	c.StartMember()
	t.Cleanup(func() { c.Shutdown(true) })
	return &env{deps: deps, store: store}
}

func (e *env) post(t *testing.T, from, to, clientID string) *parleypb.PostResponse {
	t.Helper()
	conv := convid.DirectID(from, to)
	res, err := e.deps.Request(conv, actors.KindConversation,
		&parleypb.PostRequest{Conversation: conv, From: from, To: to, ClientId: clientID, Text: "text " + clientID})
	require.NoError(t, err)
	r, ok := res.(*parleypb.PostResponse)
	require.True(t, ok, "%T", res)
	return r
}

// tryPost is post without failing the test on a transport error.
func (e *env) tryPost(from, to, clientID string) (*parleypb.PostResponse, error) {
	conv := convid.DirectID(from, to)
	res, err := e.deps.Request(conv, actors.KindConversation,
		&parleypb.PostRequest{Conversation: conv, From: from, To: to, ClientId: clientID, Text: "text " + clientID})
	if err != nil {
		return nil, err
	}
	r := res.(*parleypb.PostResponse)
	if r.Error != nil {
		return nil, fmt.Errorf("%v", r.Error)
	}
	return r, nil
}

func (e *env) queue(t *testing.T, user string) []*parleypb.Message {
	t.Helper()
	q, err := e.store.ReadQueue(context.Background(), user, 0, 1000)
	require.NoError(t, err)
	return q
}

func TestPostCommitsThenFansOutInOrder(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	var last int64
	for i := range 5 {
		r := e.post(t, "alice", "bob", fmt.Sprint("c", i))
		require.Nil(t, r.Error)
		require.Greater(t, r.MessageId, last, "ids grow within the conversation")
		last = r.MessageId
	}
	for _, u := range []string{"alice", "bob"} {
		testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if q := e.queue(t, u); len(q) != 5 {
				return fmt.Errorf("%s has %d entries", u, len(q))
			}
			return nil
		})
		for i, m := range e.queue(t, u) {
			require.Equal(t, uint64(i+1), m.Seq)
			require.Equal(t, fmt.Sprint("c", i), m.ClientId)
		}
	}
}

func TestConcurrentRepeatsGiveOneMessage(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	var wg sync.WaitGroup
	got := make([]int64, 10)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = e.post(t, "alice", "bob", "same").MessageId
		}()
	}
	wg.Wait()
	for _, id := range got {
		require.Equal(t, got[0], id)
	}
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if q := e.queue(t, "bob"); len(q) != 1 {
			return fmt.Errorf("bob has %d entries", len(q))
		}
		return nil
	})
}

func TestPostRefusals(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	r := e.post(t, "alice", "ghost", "x")
	require.Equal(t, parleypb.ErrorReason_NOT_FOUND, r.Error.GetReason())

	conv := convid.DirectID("alice", "bob")
	res, err := e.deps.Request(conv, actors.KindConversation,
		&parleypb.PostRequest{Conversation: conv, From: "carol", To: "bob", ClientId: "x", Text: "hi"})
	require.NoError(t, err)
	require.Equal(t, parleypb.ErrorReason_FORBIDDEN, res.(*parleypb.PostResponse).Error.GetReason())
}

// A second activation (simulated by a direct append that moves the stream) makes the
// live grain's next append fail: it writes nothing, reloads, appends the post again
// after the other writer's message, and then stops (the other writer keeps the stream).
func TestStaleActivationCannotWrite(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	conv := convid.DirectID("alice", "bob")
	first := e.post(t, "alice", "bob", "first")
	require.Nil(t, first.Error)

	ctx := context.Background()
	v, err := e.store.ConversationVersion(ctx, conv)
	require.NoError(t, err)
	other := &parleypb.Message{MessageId: first.MessageId + 1000, Conversation: conv, From: "bob", To: "alice",
		ClientId: "other", Text: "from the other activation", Ts: 1}
	_, err = e.store.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: v,
		Messages: []*parleypb.Message{other}})
	require.NoError(t, err)

	second := e.post(t, "alice", "bob", "second")
	require.Nil(t, second.Error)
	require.Greater(t, second.MessageId, other.MessageId, "the grain continues above the stream")
	// Having met another writer, the grain stops; a repeat reaches the next activation
	// (a request caught by the stopping one times out and is retried).
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		again, err := e.tryPost("alice", "bob", "second")
		if err == nil && again.MessageId != second.MessageId {
			t.Fatalf("repeat got %d, want %d", again.MessageId, second.MessageId)
		}
		return err
	})

	hist, _, err := e.store.History(ctx, conv, 0, 0, 10)
	require.NoError(t, err)
	var clients []string
	for _, m := range hist {
		clients = append(clients, m.ClientId)
	}
	require.Equal(t, []string{"first", "other", "second"}, clients)
}

// An idle conversation passivates after a snapshot of its delivery progress; the
// outbox is clear, and a new activation re-drives nothing.
func TestPassivationKeepsDeliveryProgress(t *testing.T) {
	e := startGrains(t, 300*time.Millisecond, "alice", "bob")
	conv := convid.DirectID("alice", "bob")
	var last int64
	for i := range 3 {
		last = e.post(t, "alice", "bob", fmt.Sprint("c", i)).MessageId
	}
	key := actors.KindConversation + "/" + conv
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, ok := e.deps.Grains.Snapshot()[key]; ok {
			return fmt.Errorf("still active")
		}
		return nil
	})
	ctx := context.Background()
	_, state, err := e.store.Snapshot(ctx, persistence.ConversationStream(conv))
	require.NoError(t, err)
	snap := &parleypb.ConversationSnapshot{}
	require.NoError(t, protoUnmarshal(state, snap))
	require.Equal(t, map[string]int64{"alice": last, "bob": last}, snap.Delivered)
	pending, err := e.store.PendingOutbox(ctx, 0, 10)
	require.NoError(t, err)
	require.Empty(t, pending)

	require.Nil(t, e.post(t, "alice", "bob", "c3").Error)
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if q := e.queue(t, "bob"); len(q) != 4 {
			return fmt.Errorf("bob has %d entries", len(q))
		}
		return nil
	})
}

// recorder is a stand-in connection actor that records deliveries.
type recorder struct {
	mu   sync.Mutex
	msgs []*parleypb.Message
}

func (r *recorder) Receive(ctx actor.Context) {
	if d, ok := ctx.Message().(*parleypb.Deliver); ok {
		r.mu.Lock()
		r.msgs = append(r.msgs, d.Messages...)
		r.mu.Unlock()
	}
}

func TestUserGrainQueuesOnceAndPushes(t *testing.T) {
	e := startGrains(t, time.Minute, "bob")
	rec := &recorder{}
	root := e.deps.Cluster.ActorSystem.Root
	pid := root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec }))
	res, err := e.deps.Request("bob", actors.KindUser, &parleypb.AttachRequest{Conn: pid, DeviceId: "d1"})
	require.NoError(t, err)
	require.Equal(t, uint64(0), res.(*parleypb.AttachResponse).LastSeq)

	msgs := []*parleypb.Message{
		{MessageId: 10, Conversation: "dm:alice:bob", From: "alice", ClientId: "a"},
		{MessageId: 11, Conversation: "dm:alice:bob", From: "alice", ClientId: "b"},
	}
	for range 3 { // repeated enqueues (re-driven fan-out) queue each message once
		res, err = e.deps.Request("bob", actors.KindUser, &parleypb.EnqueueRequest{Conversation: "dm:alice:bob", Messages: msgs})
		require.NoError(t, err)
		require.Equal(t, int64(11), res.(*parleypb.EnqueueResponse).UpTo)
	}
	q := e.queue(t, "bob")
	require.Len(t, q, 2)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.msgs) != 2 || rec.msgs[0].Seq != 1 || rec.msgs[1].Seq != 2 {
			return fmt.Errorf("pushed %v", rec.msgs)
		}
		return nil
	})

	// Acks move the device cursor forward only, and never past the queue.
	root.Send(e.deps.Cluster.Get("bob", actors.KindUser), &parleypb.AckRequest{DeviceId: "d1", UpTo: 99})
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := e.store.Cursors(context.Background(), "bob")
		if err == nil && c["d1"] != 2 {
			err = fmt.Errorf("cursor %v", c)
		}
		return err
	})
	res, err = e.deps.Request("bob", actors.KindUser, &parleypb.StatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "online", res.(*parleypb.StatusResponse).Status)
}

// Without a snapshot, the outbox decides: no outbox row means every member has every
// message, so a new activation re-drives nothing old.
func TestActivationWithoutSnapshotTrustsOutbox(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	ctx := context.Background()
	conv := convid.DirectID("alice", "bob")
	old := &parleypb.Message{MessageId: 5, Conversation: conv, From: "alice", To: "bob", ClientId: "old", Text: "x", Ts: 1}
	_, err := e.store.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Messages: []*parleypb.Message{old}})
	require.NoError(t, err)
	require.NoError(t, e.store.ClearOutbox(ctx, conv, 5))

	require.Nil(t, e.post(t, "alice", "bob", "new").Error)
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if q := e.queue(t, "bob"); len(q) != 1 || q[0].ClientId != "new" {
			return fmt.Errorf("bob's queue: %v", q)
		}
		return nil
	})
}

// With an outbox row, a new activation re-drives what is pending, and clears the row.
func TestActivationRedrivesPendingOutbox(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	ctx := context.Background()
	conv := convid.DirectID("alice", "bob")
	old := &parleypb.Message{MessageId: 5, Conversation: conv, From: "alice", To: "bob", ClientId: "old", Text: "x", Ts: 1}
	_, err := e.store.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Messages: []*parleypb.Message{old}})
	require.NoError(t, err)

	e.deps.Wake(conv)
	for _, u := range []string{"alice", "bob"} {
		testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			if q := e.queue(t, u); len(q) != 1 {
				return fmt.Errorf("%s's queue: %v", u, q)
			}
			return nil
		})
	}
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		pending, err := e.store.OutboxPending(ctx, conv)
		if err == nil && pending {
			err = fmt.Errorf("outbox row still there")
		}
		return err
	})
}

// The same for a user's queue: another writer's entries stay, the grain's own batch
// follows them, and seq has no gap.
func TestStaleUserActivationReloads(t *testing.T) {
	e := startGrains(t, time.Minute, "bob")
	enqueue := func(id int64) { // retried: after a conflict the grain stops (see above)
		testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			res, err := e.deps.Request("bob", actors.KindUser, &parleypb.EnqueueRequest{Conversation: "dm:alice:bob",
				Messages: []*parleypb.Message{{MessageId: id, Conversation: "dm:alice:bob", From: "alice", ClientId: fmt.Sprint(id)}}})
			if err == nil && res.(*parleypb.EnqueueResponse).Error != nil {
				err = fmt.Errorf("%v", res.(*parleypb.EnqueueResponse).Error)
			}
			return err
		})
	}
	enqueue(1)
	_, err := e.store.AppendUser(context.Background(), persistence.UserAppend{User: "bob", Expected: 1,
		Messages: []*parleypb.Message{{MessageId: 2, Conversation: "dm:carol:bob", From: "carol"}}})
	require.NoError(t, err)
	enqueue(3)
	enqueue(2) // already queued by the other writer: skipped
	q := e.queue(t, "bob")
	require.Len(t, q, 3)
	for i, m := range q {
		require.Equal(t, uint64(i+1), m.Seq)
	}
	require.Equal(t, []int64{1, 2, 3}, []int64{q[0].MessageId, q[1].MessageId, q[2].MessageId})
}

// A group's fan-out tracks which members still lack messages without rescanning the
// group on every acknowledgement: once the last member has the last message, the
// outbox row goes, with posts still arriving while earlier ones fan out.
func TestGroupFanoutClearsOutbox(t *testing.T) {
	users := make([]string, 30)
	for i := range users {
		users[i] = fmt.Sprintf("g%02d", i)
	}
	e := startGrains(t, time.Minute, users...)
	res, err := e.deps.Request("group:clear", actors.KindConversation, &parleypb.GroupRequest{
		Op: parleypb.GroupRequest_CREATE, Group: "clear", By: users[0], Name: "clear", Members: users[1:]})
	require.NoError(t, err)
	require.Nil(t, res.(*parleypb.GroupResponse).Error)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.deps.Request("group:clear", actors.KindConversation, &parleypb.PostRequest{
				Conversation: "group:clear", From: users[i%len(users)], Group: "clear", ClientId: fmt.Sprint("p", i), Text: "hi"})
			assert.NoError(t, err)
		}()
		if i%10 == 9 {
			time.Sleep(20 * time.Millisecond) // later posts land mid fan-out
		}
	}
	wg.Wait()
	ctx := context.Background()
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		for _, u := range users {
			if q := e.queue(t, u); len(q) != 40 {
				return fmt.Errorf("%s has %d entries", u, len(q))
			}
		}
		if pending, err := e.store.OutboxPending(ctx, "group:clear"); err != nil || pending {
			return fmt.Errorf("outbox row still there (%v)", err)
		}
		return nil
	})
}
