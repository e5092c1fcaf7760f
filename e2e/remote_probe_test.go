package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/certs"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// probe speaks Proto.Actor's remote protocol to a node's remote port from the test
// process, as the security review's probes did: it opens one Remoting/Receive stream
// to send batches on, and serves a port of its own where the node delivers answers.
// It needs no actor system (whose known data races would fire in this process).
type probe struct {
	t       *testing.T
	addr    string // the probe's own port: the address of its PIDs
	stream  remote.Remoting_ReceiveClient
	answers chan answer
	nextID  atomic.Uint32
}

type answer struct {
	requestID uint32
	msg       proto.Message
}

// newProbe serves the probe's port with creds (nil: plain gRPC).
func newProbe(t *testing.T, creds credentials.TransportCredentials) *probe {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	srv := grpc.NewServer(opts...)
	p := &probe{t: t, addr: ln.Addr().String(), answers: make(chan answer, 64)}
	remote.RegisterRemotingServer(srv, &probeServer{answers: p.answers})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return p
}

// connect opens the stream to the remote port at addr and says hello as a member
// would; the error is the dial's, the handshake's or the node's.
func (p *probe) connect(addr string, creds credentials.TransportCredentials) error {
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	p.t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	p.t.Cleanup(cancel)
	if p.stream, err = remote.NewRemotingClient(conn).Receive(ctx); err != nil {
		return err
	}
	hello := &remote.ConnectRequest{ConnectionType: &remote.ConnectRequest_ServerConnection{
		ServerConnection: &remote.ServerConnection{SystemId: "probe", Address: p.addr}}}
	if err := p.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectRequest{ConnectRequest: hello}}); err != nil {
		return err
	}
	m, err := recvWithin(p.stream, 10*time.Second)
	if err != nil {
		return err
	}
	if m.GetConnectResponse() == nil {
		return fmt.Errorf("no connect response: %v", m)
	}
	return nil
}

// sendBatch sends one batch as it is.
func (p *probe) sendBatch(b *remote.MessageBatch) error {
	if p.stream == nil {
		return errors.New("probe: no stream")
	}
	return p.stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: b}})
}

// request sends msg to target from a PID of the probe and waits for the answer.
func (p *probe) request(target *actor.PID, msg proto.Message) (proto.Message, error) {
	data, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	id := p.nextID.Add(1)
	err = p.sendBatch(&remote.MessageBatch{
		TypeNames: []string{string(proto.MessageName(msg))},
		Targets:   []*actor.PID{target},
		Senders:   []*actor.PID{{Address: p.addr, Id: "probe"}},
		Envelopes: []*remote.MessageEnvelope{{MessageData: data, TypeId: 0, Target: 0, Sender: 1, SenderRequestId: id}},
	})
	if err != nil {
		return nil, err
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case a := <-p.answers:
			if a.requestID == id {
				return a.msg, nil
			}
		case <-timeout:
			return nil, fmt.Errorf("no answer to %s within 10s", proto.MessageName(msg))
		}
	}
}

// forgePost does what the security review did through the remote port: activate the
// conversation of from and to on the node at addr, then post to it as from.
func (p *probe) forgePost(addr, from, to, text string) error {
	conv := convid.DirectID(from, to)
	res, err := p.request(actor.NewPID(addr, disthash.PartitionActivatorActorName), &cluster.ActivationRequest{
		ClusterIdentity: &cluster.ClusterIdentity{Kind: actors.KindConversation, Identity: conv}, RequestId: "probe"})
	if err != nil {
		return fmt.Errorf("activating %s: %w", conv, err)
	}
	act, ok := res.(*cluster.ActivationResponse)
	if !ok || act.Pid == nil {
		return fmt.Errorf("activation answered %v", res)
	}
	res, err = p.request(act.Pid, &parleypb.PostRequest{Conversation: conv, From: from, To: to,
		ClientId: fmt.Sprint("forged-", p.nextID.Load()), Text: text})
	if err != nil {
		return fmt.Errorf("posting: %w", err)
	}
	if post, ok := res.(*parleypb.PostResponse); !ok || post.Error != nil || post.MessageId == 0 {
		return fmt.Errorf("post answered %v", res)
	}
	return nil
}

// recvWithin reads one message from s, or gives up after d.
func recvWithin(s remote.Remoting_ReceiveClient, d time.Duration) (*remote.RemoteMessage, error) {
	type result struct {
		m   *remote.RemoteMessage
		err error
	}
	c := make(chan result, 1)
	go func() {
		m, err := s.Recv()
		c <- result{m, err}
	}()
	select {
	case r := <-c:
		return r.m, r.err
	case <-time.After(d):
		return nil, fmt.Errorf("nothing received within %v", d)
	}
}

// probeServer takes the node's connection to the probe and hands on what it delivers.
type probeServer struct {
	remote.UnimplementedRemotingServer
	answers chan<- answer
}

func (s *probeServer) Receive(stream remote.Remoting_ReceiveServer) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		switch b := m.MessageType.(type) {
		case *remote.RemoteMessage_ConnectRequest:
			err = stream.Send(&remote.RemoteMessage{MessageType: &remote.RemoteMessage_ConnectResponse{
				ConnectResponse: &remote.ConnectResponse{MemberId: "probe"}}})
			if err != nil {
				return err
			}
		case *remote.RemoteMessage_MessageBatch:
			for _, e := range b.MessageBatch.Envelopes {
				mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(b.MessageBatch.TypeNames[e.TypeId]))
				if err != nil {
					continue
				}
				msg := mt.New().Interface()
				if proto.Unmarshal(e.MessageData, msg) != nil {
					continue
				}
				select {
				case s.answers <- answer{requestID: e.TargetRequestId, msg: msg}:
				default:
				}
			}
		}
	}
}

// tlsEnv is the environment that gives a node the member certificate name of the
// directory dir (made by certs.WriteDir).
func tlsEnv(dir, name string) []string {
	f := certs.FilesIn(dir, name)
	return []string{"PARLEY_CLUSTER_TLS_CERT=" + f.Cert, "PARLEY_CLUSTER_TLS_KEY=" + f.Key, "PARLEY_CLUSTER_TLS_CA=" + f.CA}
}

func mustMember(t *testing.T, dir, name string) certs.Member {
	t.Helper()
	f := certs.FilesIn(dir, name)
	m, err := certs.Load(f.Cert, f.Key, f.CA)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
