package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/parleychat/parley/internal/certs"
	"github.com/parleychat/parley/internal/config"
)

// The remote (node-to-node) transport is Proto.Actor's gRPC server and clients. What
// we add to it (security review finding 2):
//   - mutual TLS when cluster.tls is set: only holders of a member certificate of the
//     cluster's CA get past the handshake, and this node dials only such members;
//   - a guard on the one stream method (Remoting/Receive): a MessageBatch must be
//     well formed and name only the cluster's message types, or the stream is
//     closed before Proto.Actor reads it (an unknown type name crashes the process
//     in the library's deserializer), and a panic in the handler closes the stream
//     instead of the process;
//   - no unary calls (rejectUnary), a 16 MiB receive limit (a batch of 100 messages;
//     research/protoactor.md §6), and 10 s to finish a handshake.

const (
	remoteRecvLimit = 16 << 20
	remoteBatchSize = 100
	// remoteQueueSize is the first size of the queue of messages waiting for each
	// peer's stream; it doubles when full. The library's default, 1,000,000 slots
	// (16 MB per peer), is allocated at each (re)connect and its pages are touched
	// one by one as messages pass: in the soak a node's RSS rose by ~32 MB over the
	// first 15 minutes after a start, with two peers, and again after each reconnect.
	remoteQueueSize  = 4096
	handshakeTimeout = 10 * time.Second
	// remoteLogEvery bounds the guard's log lines of each kind (a peer can repeat
	// what gets it refused as fast as it can connect).
	remoteLogEvery = 10 * time.Second
)

// clusterPackages are the protobuf packages whose messages may cross between
// members: Parley's own and Proto.Actor's (actor, cluster, remote); google.protobuf
// is allowed as well (well-known types).
var clusterPackages = []string{"parley.v1", "actor", "cluster", "remote"}

// remoteOptions are the options of the remote transport for cfg.
func remoteOptions(cfg config.Cluster, log *slog.Logger) ([]remote.ConfigOption, error) {
	g := newStreamGuard(log, clusterTypes())
	server := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(remoteRecvLimit),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.UnaryInterceptor(rejectUnary),
		grpc.StreamInterceptor(g.intercept),
	}
	opts := []remote.ConfigOption{remote.WithEndpointWriterBatchSize(remoteBatchSize),
		remote.WithEndpointWriterQueueSize(remoteQueueSize)}
	if cfg.TLS.Enabled() {
		m, err := certs.Load(cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("loading cluster.tls: %w", err)
		}
		server = append(server, grpc.Creds(loggedHandshakes{credentials.NewTLS(m.ServerConfig()), g}))
		// This replaces the library's dial options, which are only grpc.WithInsecure()
		// (remote/config.go defaultConfig): dials are non-blocking, no keepalive.
		opts = append(opts, remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(m.ClientConfig()))))
	}
	return append(opts, remote.WithServerOptions(server...)), nil
}

// clusterTypes lists the full names of the registered messages in clusterPackages
// (and google.protobuf); it is read when the node starts, after every init.
func clusterTypes() map[string]bool {
	allowed := map[string]bool{}
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		d := mt.Descriptor()
		pkg := string(d.ParentFile().Package())
		if slices.Contains(clusterPackages, pkg) || pkg == "google.protobuf" || strings.HasPrefix(pkg, "google.protobuf.") {
			allowed[string(d.FullName())] = true
		}
		return true
	})
	return allowed
}

// streamGuard checks what peers send on the remote port, and logs what it refuses.
type streamGuard struct {
	log     *slog.Logger
	allowed map[string]bool
	refused throttle
	panics  throttle
	tls     throttle
}

func newStreamGuard(log *slog.Logger, allowed map[string]bool) *streamGuard {
	return &streamGuard{log: log, allowed: allowed,
		refused: throttle{every: remoteLogEvery}, panics: throttle{every: remoteLogEvery}, tls: throttle{every: remoteLogEvery}}
}

// errRefused is what a peer whose batch is refused gets; the stream then ends.
var errRefused = status.Error(codes.InvalidArgument, "message batch refused")

// intercept runs a stream handler on a stream whose batches are checked, and turns a
// panic in it into the end of that stream.
func (g *streamGuard) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if dropped, ok := g.panics.allow(); ok {
				g.log.Error("remote: a peer's message made the stream handler panic; stream closed",
					append(peerAttrs(ss.Context()), slog.String("method", info.FullMethod), slog.Any("panic", r),
						slog.String("stack", clipped(string(debug.Stack()), 4096)), slog.Int("suppressed", dropped))...)
			}
			err = status.Error(codes.Internal, "stream closed")
		}
	}()
	return handler(srv, &guardedStream{ServerStream: ss, g: g})
}

// guardedStream checks each message as Proto.Actor's endpoint reader receives it.
type guardedStream struct {
	grpc.ServerStream
	g *streamGuard
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	msg, ok := m.(*remote.RemoteMessage)
	if !ok {
		s.g.refuse(s.Context(), fmt.Errorf("unexpected stream message %T", m))
		return errRefused
	}
	if b := msg.GetMessageBatch(); b != nil {
		if err := s.g.check(b); err != nil {
			s.g.refuse(s.Context(), err)
			return errRefused
		}
	}
	return nil
}

// check reports why Proto.Actor must not read b: a type outside the cluster's, or an
// index or serializer its reader would use unchecked.
func (g *streamGuard) check(b *remote.MessageBatch) error {
	for _, name := range b.TypeNames {
		if !g.allowed[name] {
			return fmt.Errorf("message type %q is not one of the cluster's", clipped(name, 200))
		}
	}
	for i, e := range b.Envelopes {
		switch {
		case e == nil:
			return fmt.Errorf("envelope %d: empty", i)
		case e.SerializerId != 0: // the library's writer always uses protobuf (0)
			return fmt.Errorf("envelope %d: serializer %d", i, e.SerializerId)
		case e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames):
			return fmt.Errorf("envelope %d: type %d of %d", i, e.TypeId, len(b.TypeNames))
		case e.Target < 0 || int(e.Target) >= len(b.Targets):
			return fmt.Errorf("envelope %d: target %d of %d", i, e.Target, len(b.Targets))
		case e.Sender < 0 || int(e.Sender) > len(b.Senders): // 0 is no sender, i is Senders[i-1]
			return fmt.Errorf("envelope %d: sender %d of %d", i, e.Sender, len(b.Senders))
		}
	}
	return nil
}

func (g *streamGuard) refuse(ctx context.Context, why error) {
	if dropped, ok := g.refused.allow(); ok {
		g.log.Warn("remote: refused a peer's message batch; stream closed",
			append(peerAttrs(ctx), slog.String("reason", why.Error()), slog.Int("suppressed", dropped))...)
	}
}

// loggedHandshakes logs the TLS handshakes the remote port refuses (gRPC itself
// logs nothing: Proto.Actor silences its logger, and a member that cannot dial is
// not reported either).
type loggedHandshakes struct {
	credentials.TransportCredentials
	g *streamGuard
}

func (c loggedHandshakes) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		if dropped, ok := c.g.tls.allow(); ok {
			c.g.log.Warn("remote: TLS handshake refused", slog.String("peer", conn.RemoteAddr().String()),
				slog.Any("error", err), slog.Int("suppressed", dropped))
		}
	}
	return out, info, err
}

func (c loggedHandshakes) Clone() credentials.TransportCredentials {
	return loggedHandshakes{c.TransportCredentials.Clone(), c.g}
}

// peerAttrs names the peer of a stream: its address and, over TLS, its certificate.
func peerAttrs(ctx context.Context) []any {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	attrs := []any{slog.String("peer", p.Addr.String())}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		attrs = append(attrs, slog.String("peer_cert", ti.State.PeerCertificates[0].Subject.CommonName))
	}
	return attrs
}

func clipped(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// throttle lets one event through per interval and counts the others.
type throttle struct {
	every   time.Duration
	mu      sync.Mutex
	next    time.Time
	dropped int
}

// allow reports whether to log now, and how many events were held back since the
// last one logged.
func (t *throttle) allow() (dropped int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if now.Before(t.next) {
		t.dropped++
		return 0, false
	}
	t.next = now.Add(t.every)
	dropped, t.dropped = t.dropped, 0
	return dropped, true
}
