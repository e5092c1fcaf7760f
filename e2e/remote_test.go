package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/certs"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
)

// Security review finding 2: two nodes talk over mutual TLS, and a message between
// users whose user grains sit on different nodes (each connected to the other node)
// is delivered both ways.
func TestClusterTLS(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, certs.WriteDir(dir, "node1", "node2"))
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 0, 2)
	ports := []string{freePort(t), freePort(t)}
	for i, port := range ports {
		c.Add(append(tlsEnv(dir, fmt.Sprint("node", i+1)), "PARLEY_CLUSTER_PORT="+port)...)
	}
	waitMembers(t, c, 2)
	a, b := c.Nodes[0], c.Nodes[1]
	aAddr, bAddr := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]

	// alice's user grain on a, bob's on b, as the members place them.
	rdv := placement(t, a)
	owner := func(user string) string {
		return rdv.GetByClusterIdentity(&cluster.ClusterIdentity{Kind: actors.KindUser, Identity: user})
	}
	var aliceName, bobName string
	for i := 0; aliceName == "" || bobName == ""; i++ {
		require.Less(t, i, 200)
		name := testenv.Name("u")
		switch owner(name) {
		case aAddr:
			aliceName = name
		case bAddr:
			bobName = name
		}
	}
	alice, bob := registerAs(t, a, aliceName), registerAs(t, b, bobName)
	ac, bc := dial(t, b, alice), dial(t, a, bob) // each on the other node
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)
	require.Contains(t, activeGrains(t, a), "User/"+alice.UserID)
	require.Contains(t, activeGrains(t, b), "User/"+bob.UserID)

	require.NoError(t, ac.Write(sendFrame("hello", bob.UserID, "over TLS")))
	br.waitFor(t, 30*time.Second, "alice's message", func(r *reader) bool { return len(r.messages) == 1 })
	require.NoError(t, bc.Write(sendFrame("back", alice.UserID, "and back")))
	ar.waitFor(t, 30*time.Second, "bob's answer", func(r *reader) bool { return len(r.messages) == 2 })
	msgs, _, errs, _ := ar.snapshot()
	require.Empty(t, errs)
	require.Equal(t, []string{"over TLS", "and back"}, []string{msgs[0].Text, msgs[1].Text})

	for i, n := range c.Nodes { // the members never refused one another
		require.NotContains(t, n.Log(), "remote: ", "node %d", i)
	}
	for _, addr := range []string{aAddr, bAddr} { // and they do refuse a stranger
		require.Error(t, newProbe(t, nil).connect(addr, insecure.NewCredentials()), "plain gRPC to %s", addr)
	}
}

// placement is the rendezvous hash over the members n sees.
func placement(t *testing.T, n *testenv.Node) *cluster.Rendezvous {
	t.Helper()
	var ms []*cluster.Member
	for _, m := range members(t, n) {
		host, port, _ := strings.Cut(m.Address, ":")
		var p int32
		_, err := fmt.Sscan(port, &p)
		require.NoError(t, err)
		ms = append(ms, &cluster.Member{Id: m.ID, Host: host, Port: p, Kinds: m.Kinds})
	}
	rdv := cluster.NewRendezvous()
	rdv.UpdateMembers(ms)
	return rdv
}

// Security review finding 2, the probes: against a node with TLS, a plain gRPC client
// and a client whose certificate another CA signed fail the handshake and cannot
// forge a post; the same probe with a member certificate can (a member certificate
// is what the cluster trusts).
func TestRemotePortRefusesStrangers(t *testing.T) {
	dir, rogueDir := t.TempDir(), t.TempDir()
	require.NoError(t, certs.WriteDir(dir, "node1", "probe"))
	require.NoError(t, certs.WriteDir(rogueDir, "probe"))
	port := freePort(t)
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig, append(tlsEnv(dir, "node1"), "PARLEY_CLUSTER_PORT="+port)...)
	addr := "127.0.0.1:" + port
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")

	member, rogue := mustMember(t, dir, "probe"), mustMember(t, rogueDir, "probe")
	// The rogue client accepts any server, so only the node's check of its
	// certificate stands in its way.
	rogueClient := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{rogue.Cert}, InsecureSkipVerify: true}
	strangers := []struct {
		name        string
		dial, serve credentials.TransportCredentials
		tls         *tls.Config // for a TLS handshake of its own, without gRPC
	}{
		{"plain gRPC", insecure.NewCredentials(), nil, nil},
		{"certificate of another CA", credentials.NewTLS(rogueClient), credentials.NewTLS(rogue.ServerConfig()), rogueClient},
	}
	for _, s := range strangers {
		t.Run(s.name, func(t *testing.T) {
			p := newProbe(t, s.serve)
			err := p.connect(addr, s.dial)
			require.Error(t, err)
			require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			t.Logf("refused: %v", err)
			require.Error(t, p.forgePost(addr, alice.UserID, bob.UserID, "FORGED by "+s.name))
			if s.tls != nil {
				// gRPC may report the closed connection before the alert; a plain TLS
				// client reads the alert.
				err := handshake(addr, s.tls)
				require.ErrorContains(t, err, "tls: ")
				t.Logf("TLS handshake: %v", err)
			}
		})
	}
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(n.Log(), "remote: TLS handshake refused") {
			return fmt.Errorf("the node logged no refused handshake")
		}
		return nil
	})

	t.Run("member certificate", func(t *testing.T) {
		p := newProbe(t, credentials.NewTLS(member.ServerConfig()))
		require.NoError(t, p.connect(addr, credentials.NewTLS(member.ClientConfig())))
		require.NoError(t, p.forgePost(addr, alice.UserID, bob.UserID, "posted with a member certificate"))
	})

	require.Equal(t, []string{"posted with a member certificate"}, historyTexts(t, n, bob, convid.DirectID(alice.UserID, bob.UserID)))
}

// handshake makes a TLS connection to addr and reads from it: the server's verdict
// on the client's certificate arrives after the client's side of a TLS 1.3 handshake.
func handshake(addr string, cfg *tls.Config) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

// historyTexts reads a conversation's history over REST as s.
func historyTexts(t *testing.T, n *testenv.Node, s client.Session, conv string) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(testenv.Context(t, 10*time.Second), http.MethodGet,
		n.URL+"/v1/conversations/"+conv+"/messages", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	var page struct {
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	require.NoError(t, client.Do(req, &page))
	texts := []string{}
	for _, m := range page.Messages {
		texts = append(texts, m.Text)
	}
	return texts
}

// Security review finding 2: a node without TLS (loopback) that receives malformed
// batches on its remote port closes that stream and stays up. Before the stream
// guard, the unknown type name made the node exit with SIGSEGV.
func TestMalformedBatchKeepsNodeUp(t *testing.T) {
	port := freePort(t)
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig, "PARLEY_CLUSTER_PORT="+port)
	addr := "127.0.0.1:" + port
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	activator := actor.NewPID(addr, disthash.PartitionActivatorActorName)
	batch := func(typeName string, e *remote.MessageEnvelope) *remote.MessageBatch {
		return &remote.MessageBatch{TypeNames: []string{typeName}, Targets: []*actor.PID{activator},
			Envelopes: []*remote.MessageEnvelope{e}}
	}
	cases := []struct {
		name  string
		batch *remote.MessageBatch
		code  codes.Code
	}{
		{"unknown type name", batch("no.such.Type", &remote.MessageEnvelope{}), codes.InvalidArgument},
		{"type index past the names", batch("actor.PoisonPill", &remote.MessageEnvelope{TypeId: 3}), codes.InvalidArgument},
		{"target index past the targets", batch("actor.PoisonPill", &remote.MessageEnvelope{Target: 5}), codes.InvalidArgument},
		{"sender index past the senders", batch("actor.PoisonPill", &remote.MessageEnvelope{Sender: 2}), codes.InvalidArgument},
		{"serializer that does not exist", batch("actor.PoisonPill", &remote.MessageEnvelope{SerializerId: 7}), codes.InvalidArgument},
		// A cluster type the library mishandles: Terminated without a watchee
		// dereferences nil in the handler, which the guard recovers.
		{"terminated without a watchee", batch("actor.Terminated", &remote.MessageEnvelope{}), codes.Internal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProbe(t, nil)
			require.NoError(t, p.connect(addr, insecure.NewCredentials()))
			require.NoError(t, p.sendBatch(tc.batch))
			_, err := recvWithin(p.stream, 10*time.Second)
			require.Equal(t, tc.code, status.Code(err), "the stream ends: %v", err)
			res, err := http.Get(n.URL + "/healthz")
			require.NoError(t, err, "the node is up")
			res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
		})
	}
	log := n.Log()
	require.Contains(t, log, "remote: refused a peer's message batch")
	require.Contains(t, log, "remote: a peer's message made the stream handler panic")
	require.NotContains(t, log, "SIGSEGV")

	// Users still chat.
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)
	require.NoError(t, ac.Write(sendFrame("after", bob.UserID, "still here")))
	br.waitFor(t, 30*time.Second, "the message", func(r *reader) bool { return len(r.messages) == 1 })
	ar.waitFor(t, 30*time.Second, "sent", func(r *reader) bool { return r.sent["after"] != nil })
}

// `node -check` refuses a routable cluster.host without TLS, under cluster.tls, and
// accepts it with member certificates.
func TestCheckClusterTLS(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, certs.WriteDir(dir, "node1"))
	check := func(env ...string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := testenv.NodeCommand(ctx, t, "postgres://nobody@127.0.0.1:1/none", "-check")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		require.NoError(t, err)
		return string(out), 0
	}
	out, code := check("PARLEY_CLUSTER_HOST=10.0.0.5")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, "cluster.tls: required when cluster.host is not a loopback address")

	out, code = check(append(tlsEnv(dir, "node1"), "PARLEY_CLUSTER_HOST=10.0.0.5")...)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "configuration ok")
}
