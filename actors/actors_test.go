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
	return startCluster(t, 1, idle, users...)[0]
}

// startCluster runs n members in this process (one in-memory provider), sharing a
// fresh database with the users given.
func startCluster(t testing.TB, n int, idle time.Duration, users ...string) []*env {
	t.Helper()
	ctx := context.Background()
	store, err := postgres.Open(ctx, testenv.DatabaseURL(t), postgres.Options{})
	require.NoError(t, err)
	t.Cleanup(store.Close)
	for _, u := range users {
		require.NoError(t, store.CreateUser(ctx, persistence.User{ID: u, DisplayName: u, PasswordHash: "x"}))
	}
	agent := test.NewInMemAgent()
	envs := make([]*env, n)
	for i := range envs {
		gen, err := ids.New(int64(i + 1))
		require.NoError(t, err)
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		deps := &actors.Deps{Store: store, IDs: gen, Log: log, Grains: actors.NewRegistry(), Settings: actors.Settings{
			RequestTimeout: 5 * time.Second, IdleTimeout: idle, DedupeCache: 256, MaxTextBytes: 4096,
			SyncBatch: 500, HistoryMax: 100, HistoryDefault: 50, MaxGroupMembers: 500}}
		system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
		c := cluster.New(system, cluster.Configure("t", test.NewTestProvider(agent), disthash.New(),
			remote.Configure("127.0.0.1", 0), cluster.WithKinds(actors.Kinds(deps)...)))
		deps.Cluster = c
		deps.Topology = actors.NewTopology(c, deps.Grains)
		c.StartMember()
		t.Cleanup(func() { c.Shutdown(true) })
		envs[i] = &env{deps: deps, store: store}
	}
	if n > 1 { // every member sees every other
		testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			for _, e := range envs {
				if got := len(e.deps.Topology.Members()); got != n {
					return fmt.Errorf("a member sees %d members", got)
				}
			}
			return nil
		})
	}
	return envs
}

func (e *env) post(t *testing.T, from, to, clientID string) *parleypb.PostResponse {
	t.Helper()
	r, err := e.tryPost(from, to, clientID)
	require.NoError(t, err)
	return r
}

// tryPost is post without failing the test.
func (e *env) tryPost(from, to, clientID string) (*parleypb.PostResponse, error) {
	conv := convid.DirectID(from, to)
	return actors.Call[*parleypb.PostResponse](e.deps, conv, actors.KindConversation,
		&parleypb.PostRequest{Conversation: conv, From: from, To: to, ClientId: clientID, Text: "text " + clientID})
}

func (e *env) queue(t *testing.T, user string) []*parleypb.Message {
	t.Helper()
	q, err := e.store.ReadQueue(context.Background(), user, 0, 1000)
	require.NoError(t, err)
	return q.Entries
}

func (e *env) createGroup(t testing.TB, group string, users []string) {
	t.Helper()
	_, err := actors.Call[*parleypb.GroupResponse](e.deps, convid.GroupID(group), actors.KindConversation,
		&parleypb.GroupRequest{Op: parleypb.GroupRequest_CREATE, Group: group, By: users[0], Name: group, Members: users[1:]})
	require.NoError(t, err)
}

func (e *env) postGroup(group, from, clientID string) (*parleypb.PostResponse, error) {
	return actors.Call[*parleypb.PostResponse](e.deps, convid.GroupID(group), actors.KindConversation,
		&parleypb.PostRequest{Conversation: convid.GroupID(group), From: from, Group: group, ClientId: clientID, Text: "hi"})
}

// A post is answered only once it is committed, and the commit has put it into both
// members' queues: no step after the answer is left to deliver it.
func TestPostIsInEveryQueueWhenAnswered(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	var last int64
	for i := range 5 {
		r := e.post(t, "alice", "bob", fmt.Sprint("c", i))
		require.Greater(t, r.MessageId, last, "ids grow within the conversation")
		last = r.MessageId
		for _, u := range []string{"alice", "bob"} {
			q := e.queue(t, u)
			require.Len(t, q, i+1, "%s's queue right after the answer", u)
			require.Equal(t, r.MessageId, q[i].MessageId)
			require.Equal(t, uint64(i+1), q[i].Seq)
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
			r, err := e.tryPost("alice", "bob", "same")
			if err == nil {
				got[i] = r.MessageId
			}
		}()
	}
	wg.Wait()
	for _, id := range got {
		require.Equal(t, got[0], id)
	}
	require.Len(t, e.queue(t, "bob"), 1)
}

func TestPostRefusals(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	_, err := e.tryPost("alice", "ghost", "x")
	require.Equal(t, parleypb.ErrorReason_NOT_FOUND, parleypb.ReasonOf(err), "%v", err)

	conv := convid.DirectID("alice", "bob")
	_, err = actors.Call[*parleypb.PostResponse](e.deps, conv, actors.KindConversation,
		&parleypb.PostRequest{Conversation: conv, From: "carol", To: "bob", ClientId: "x", Text: "hi"})
	require.Equal(t, parleypb.ErrorReason_FORBIDDEN, parleypb.ReasonOf(err), "%v", err)
	_, err = actors.Call[*parleypb.PostResponse](e.deps, conv, actors.KindConversation,
		&parleypb.PostRequest{Conversation: conv, From: "alice", To: "bob", ClientId: "", Text: "hi"})
	require.Equal(t, parleypb.ErrorReason_BAD_REQUEST, parleypb.ReasonOf(err), "%v", err)
}

// A conversation that does not exist (a peer who is no account, a group never
// created) answers not_found and does not stay active; with a directory, a REST group
// call for an unknown or malformed group activates nothing at all.
func TestNothingStaysActiveForWhatDoesNotExist(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	_, err := e.tryPost("alice", "ghost", "x")
	require.Equal(t, parleypb.ErrorReason_NOT_FOUND, parleypb.ReasonOf(err), "%v", err)
	group := convid.NewGroupID()
	_, err = actors.Call[*parleypb.GroupResponse](e.deps, convid.GroupID(group), actors.KindConversation,
		&parleypb.GroupRequest{Op: parleypb.GroupRequest_GET, Group: group, By: "alice"})
	require.Equal(t, parleypb.ErrorReason_NOT_FOUND, parleypb.ReasonOf(err), "%v", err)
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := e.deps.Grains.Count(actors.KindConversation); n != 0 {
			return fmt.Errorf("%d conversation grains active", n)
		}
		return nil
	})

	e.deps.Directory = actors.NewDirectory(e.store)
	for _, g := range []string{convid.NewGroupID(), "not-a-group-id", ""} {
		_, err = actors.GroupCall(e.deps, &parleypb.GroupRequest{Op: parleypb.GroupRequest_GET, Group: g, By: "alice"})
		require.Equal(t, parleypb.ErrorReason_NOT_FOUND, parleypb.ReasonOf(err), "%q: %v", g, err)
		require.Zero(t, e.deps.Grains.Count(actors.KindConversation), "no activation for %q", g)
	}
	created := convid.NewGroupID()
	_, err = actors.GroupCall(e.deps, &parleypb.GroupRequest{Op: parleypb.GroupRequest_CREATE, Group: created,
		By: "alice", Name: "team", Members: []string{"bob"}})
	require.NoError(t, err)
	r, err := actors.GroupCall(e.deps, &parleypb.GroupRequest{Op: parleypb.GroupRequest_GET, Group: created, By: "bob"})
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "bob"}, r.Members)

	// A name other users are shown is checked by the grain too, not only by REST.
	_, err = actors.GroupCall(e.deps, &parleypb.GroupRequest{Op: parleypb.GroupRequest_CREATE, Group: convid.NewGroupID(),
		By: "alice", Name: "a\u0000\n<b>", Members: []string{"bob"}})
	require.Equal(t, parleypb.ErrorReason_BAD_REQUEST, parleypb.ReasonOf(err), "%v", err)

	// A real conversation stays active after a refusal.
	e.post(t, "alice", "bob", "real")
	_, err = actors.Call[*parleypb.PostResponse](e.deps, convid.DirectID("alice", "bob"), actors.KindConversation,
		&parleypb.PostRequest{Conversation: convid.DirectID("alice", "bob"), From: "carol", To: "bob", ClientId: "x", Text: "hi"})
	require.Equal(t, parleypb.ErrorReason_FORBIDDEN, parleypb.ReasonOf(err), "%v", err)
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 2, e.deps.Grains.Count(actors.KindConversation), "the group and alice-bob")
}

// A second activation (simulated by a direct append that moves the stream) makes the
// live grain's next append fail: it writes nothing, reloads, appends the post again
// after the other writer's message, and then stops (the other writer keeps the stream).
func TestStaleActivationCannotWrite(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	conv := convid.DirectID("alice", "bob")
	first := e.post(t, "alice", "bob", "first")

	ctx := context.Background()
	v, _, err := e.store.ConversationHead(ctx, conv)
	require.NoError(t, err)
	other := &parleypb.Message{MessageId: first.MessageId + 1000, Conversation: conv, From: "bob", To: "alice",
		ClientId: "other", Text: "from the other activation", Ts: 1}
	_, err = e.store.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: v,
		Messages: []*parleypb.Message{other}, Recipients: []string{"alice", "bob"}})
	require.NoError(t, err)

	second := e.post(t, "alice", "bob", "second")
	require.Greater(t, second.MessageId, other.MessageId, "the grain continues above the stream")
	// Having met another writer, the grain stops; a repeat reaches the next activation.
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
	q := e.queue(t, "bob")
	require.Len(t, q, 3, "each message once in the queue, the other writer's included")
	requireSeqs(t, q)
}

func requireSeqs(t *testing.T, q []*parleypb.Message) {
	t.Helper()
	for i, m := range q {
		require.Equal(t, uint64(i+1), m.Seq)
	}
}

// An idle conversation passivates; its next activation continues above what is
// stored, and a repeat of an old client id is answered from the store.
func TestPassivatedConversationContinues(t *testing.T) {
	e := startGrains(t, 300*time.Millisecond, "alice", "bob")
	conv := convid.DirectID("alice", "bob")
	var first, last *parleypb.PostResponse
	for i := range 3 {
		last = e.post(t, "alice", "bob", fmt.Sprint("c", i))
		if first == nil {
			first = last
		}
	}
	waitGone(t, e, actors.KindConversation+"/"+conv)
	next := e.post(t, "alice", "bob", "c3")
	require.Greater(t, next.MessageId, last.MessageId)
	again := e.post(t, "alice", "bob", "c0")
	require.Equal(t, first.MessageId, again.MessageId, "a repeat after passivation is the first message")
	q := e.queue(t, "bob")
	require.Len(t, q, 4)
	requireSeqs(t, q)
}

func waitGone(t *testing.T, e *env, key string) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if _, ok := e.deps.Grains.Snapshot()[key]; ok {
			return fmt.Errorf("%s still active", key)
		}
		return nil
	})
}

// recorder is a stand-in connection actor that records what its user grain pushes.
type recorder struct {
	mu   sync.Mutex
	msgs []*parleypb.Message
	seqs []uint64
}

func (r *recorder) Receive(ctx actor.Context) {
	if d, ok := ctx.Message().(*parleypb.Deliver); ok {
		r.mu.Lock()
		for i, m := range d.Messages {
			r.msgs = append(r.msgs, m)
			r.seqs = append(r.seqs, d.FirstSeq+uint64(i))
		}
		r.mu.Unlock()
	}
}

func (r *recorder) waitSeqs(t *testing.T, want ...uint64) {
	t.Helper()
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if fmt.Sprint(r.seqs) != fmt.Sprint(want) {
			return fmt.Errorf("pushed seqs %v, want %v", r.seqs, want)
		}
		return nil
	})
}

func (e *env) attach(t *testing.T, user string) (*recorder, *actor.PID) {
	t.Helper()
	rec := &recorder{}
	pid := e.deps.Cluster.ActorSystem.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return rec }))
	_, err := actors.Call[*parleypb.AttachResponse](e.deps, user, actors.KindUser,
		&parleypb.AttachRequest{Conn: pid, DeviceId: "d1"})
	require.NoError(t, err)
	return rec, pid
}

// The user grain relays what a commit pushes to the user's connections, with the
// seqs the messages took in its queue; with none left it is offline since then.
func TestUserGrainRelaysPushes(t *testing.T) {
	e := startGrains(t, time.Minute, "alice", "bob")
	rec, pid := e.attach(t, "bob")
	st, err := actors.Call[*parleypb.StatusResponse](e.deps, "bob", actors.KindUser, &parleypb.StatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "online", st.Status)
	for i := range 3 {
		e.post(t, "alice", "bob", fmt.Sprint("c", i))
	}
	rec.waitSeqs(t, 1, 2, 3)

	e.deps.Cluster.ActorSystem.Root.Send(e.deps.Cluster.Get("bob", actors.KindUser), &parleypb.DetachRequest{Conn: pid})
	testenv.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		st, err := actors.Call[*parleypb.StatusResponse](e.deps, "bob", actors.KindUser, &parleypb.StatusRequest{})
		if err == nil && (st.Status != "offline" || st.LastSeen == 0) {
			err = fmt.Errorf("status %v", st)
		}
		return err
	})
}

// A user grain that passivated and came back is a new activation: pushes from a
// conversation on another node reach it, not the old activation's PID, which that
// node had cached (it is evicted when the activation stops).
func TestPushesReachTheNextActivation(t *testing.T) {
	envs := startCluster(t, 2, 300*time.Millisecond, "alice")
	a, b := envs[0], envs[1]
	bob := "" // a user whose grain lives on b, whose conversation with alice lives on a
	for i := 0; bob == ""; i++ {
		u := fmt.Sprint("bob", i)
		if !a.deps.Topology.Owns(actors.KindUser, u) && a.deps.Topology.Owns(actors.KindConversation, convid.DirectID("alice", u)) {
			bob = u
		}
	}
	require.NoError(t, a.store.CreateUser(context.Background(), persistence.User{ID: bob, DisplayName: bob, PasswordHash: "x"}))
	_, pid := a.attach(t, bob)
	a.post(t, "alice", bob, "c0") // the conversation grain, on a, resolves bob's grain, on b
	a.deps.Cluster.ActorSystem.Root.Send(a.deps.Cluster.Get(bob, actors.KindUser), &parleypb.DetachRequest{Conn: pid})
	waitGone(t, b, actors.KindUser+"/"+bob)

	rec, _ := b.attach(t, bob) // the device comes back through b: a's cache is not refreshed by it
	a.post(t, "alice", bob, "c1")
	rec.waitSeqs(t, 2)
}

// In a group, every member's queue holds every message once the post is answered,
// in one order for all, with posts arriving while earlier ones commit.
func TestGroupPostsReachEveryQueue(t *testing.T) {
	users := make([]string, 30)
	for i := range users {
		users[i] = fmt.Sprintf("g%02d", i)
	}
	e := startGrains(t, time.Minute, users...)
	const group = "abcdefghijklmnop"
	e.createGroup(t, group, users)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.postGroup(group, users[i%len(users)], fmt.Sprint("p", i))
			errs <- err
		}()
		if i%10 == 9 {
			time.Sleep(20 * time.Millisecond) // later posts land while earlier ones commit
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	first := e.queue(t, users[0])
	require.Len(t, first, 40)
	for _, u := range users {
		q := e.queue(t, u)
		require.Len(t, q, 40, u)
		requireSeqs(t, q)
		for i := range q {
			require.Equal(t, first[i].MessageId, q[i].MessageId, "%s: one order for every member", u)
		}
	}
}
