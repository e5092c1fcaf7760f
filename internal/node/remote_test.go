package node

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/parleychat/parley/internal/config"
)

// The allowlist holds the types the cluster sends (ours, the library's) and nothing
// else.
func TestClusterTypes(t *testing.T) {
	allowed := clusterTypes()
	for _, name := range []string{"parley.v1.PostRequest", "parley.v1.AttachRequest", "actor.PID",
		"actor.Terminated", "actor.PoisonPill", "cluster.ActivationRequest", "cluster.GossipRequest",
		"cluster.GrainResponse", "remote.MessageBatch", "google.protobuf.Any"} {
		if !allowed[name] {
			t.Errorf("%s is not allowed", name)
		}
	}
	for name := range allowed {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch pkg := mt.Descriptor().ParentFile().Package(); pkg {
		case "parley.v1", "actor", "cluster", "remote", "google.protobuf":
		default:
			t.Errorf("%s (package %s) is allowed", name, pkg)
		}
	}
	if allowed["no.such.Type"] {
		t.Error("no.such.Type is allowed")
	}
}

func TestStreamGuardCheck(t *testing.T) {
	g := newStreamGuard(slog.New(slog.NewTextHandler(io.Discard, nil)), clusterTypes())
	pid := &actor.PID{Address: "127.0.0.1:1", Id: "partition-activator"}
	good := func() *remote.MessageBatch {
		return &remote.MessageBatch{
			TypeNames: []string{"parley.v1.PostRequest", "actor.Terminated"},
			Targets:   []*actor.PID{pid},
			Senders:   []*actor.PID{pid},
			Envelopes: []*remote.MessageEnvelope{{TypeId: 0, Target: 0, Sender: 1}, {TypeId: 1, Target: 0, Sender: 0}},
		}
	}
	tests := []struct {
		name   string
		mutate func(b *remote.MessageBatch)
		want   string // "" means let through
	}{
		{"well formed", func(*remote.MessageBatch) {}, ""},
		{"unknown type", func(b *remote.MessageBatch) { b.TypeNames[1] = "no.such.Type" }, `"no.such.Type" is not one of the cluster's`},
		{"type of another package", func(b *remote.MessageBatch) { b.TypeNames[1] = "grpc.health.v1.HealthCheckRequest" }, "not one of the cluster's"},
		{"type index past the names", func(b *remote.MessageBatch) { b.Envelopes[1].TypeId = 2 }, "type 2 of 2"},
		{"negative type index", func(b *remote.MessageBatch) { b.Envelopes[1].TypeId = -1 }, "type -1"},
		{"target past the targets", func(b *remote.MessageBatch) { b.Envelopes[0].Target = 1 }, "target 1 of 1"},
		{"sender past the senders", func(b *remote.MessageBatch) { b.Envelopes[0].Sender = 2 }, "sender 2 of 1"},
		{"json serializer", func(b *remote.MessageBatch) { b.Envelopes[0].SerializerId = 1 }, "serializer 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := good()
			tt.mutate(b)
			err := g.check(b)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// A panicking handler ends its stream with Internal; the process goes on.
func TestStreamGuardRecovers(t *testing.T) {
	var logged strings.Builder
	g := newStreamGuard(slog.New(slog.NewTextHandler(&logged, nil)), nil)
	info := &grpc.StreamServerInfo{FullMethod: "/remote.Remoting/Receive"}
	panicky := func(any, grpc.ServerStream) error { panic("nil dereference") }
	for range 3 {
		err := g.intercept(nil, fakeStream{}, info, panicky)
		if status.Code(err) != codes.Internal {
			t.Fatalf("got %v, want Internal", err)
		}
	}
	if n := strings.Count(logged.String(), "stream handler panic"); n != 1 {
		t.Fatalf("logged %d times in a burst, want once:\n%s", n, logged.String())
	}
}

type fakeStream struct{ grpc.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

func TestRemoteOptionsTLSFiles(t *testing.T) {
	_, err := remoteOptions(config.Cluster{TLS: config.TLS{Cert: "/nonexistent/a.pem", Key: "/nonexistent/a-key.pem",
		CA: "/nonexistent/ca.pem"}}, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "cluster.tls") {
		t.Fatalf("got %v, want an error naming cluster.tls", err)
	}
}

// TestRemoteOptionsQueueSize: each peer's send queue starts small (the library's
// 1,000,000 slots cost 16 MB per peer and grow a node's RSS as they are touched).
func TestRemoteOptionsQueueSize(t *testing.T) {
	opts, err := remoteOptions(config.Cluster{}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	c := remote.Configure("127.0.0.1", 0, opts...)
	if c.EndpointWriterQueueSize != remoteQueueSize || c.EndpointWriterQueueSize > 1<<16 {
		t.Fatalf("endpoint writer queue size %d, want %d", c.EndpointWriterQueueSize, remoteQueueSize)
	}
	if c.EndpointWriterBatchSize != remoteBatchSize {
		t.Fatalf("endpoint writer batch size %d, want %d", c.EndpointWriterBatchSize, remoteBatchSize)
	}
}
