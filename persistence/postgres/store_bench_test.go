package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// BenchmarkAppendConversationGroupCommit: many conversation grains append one message
// each at a time, as under load; the group committer shares transactions among them.
// rows/s is the figure to hold against Postgres's own insert ceiling.
func BenchmarkAppendConversationGroupCommit(b *testing.B) {
	s := mustOpen(b)
	benchAppend(b, func(ctx context.Context, stream int, version uint64, id int64) (uint64, error) {
		conv := fmt.Sprintf("dm:a%d:b%d", stream, stream)
		res, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: version,
			Recipients: []string{fmt.Sprint("a", stream), fmt.Sprint("b", stream)},
			Messages:   []*parleypb.Message{{MessageId: id, Conversation: conv, From: "a", ClientId: fmt.Sprint(id), Text: "benchmark text of a typical short chat message", Ts: id}}})
		return res.Version, err
	})
}

// benchAppend runs appendOne from many writers at once, each appending to its own
// stream one row at a time, as grains under load do: 64 and 1024 writers per CPU
// (two cores: 128 and 2048 grains waiting on commits).
func benchAppend(b *testing.B, appendOne func(ctx context.Context, stream int, version uint64, id int64) (uint64, error)) {
	for _, par := range []int{64, 1024} {
		b.Run(fmt.Sprintf("writers=%dxCPU", par), func(b *testing.B) { benchWriters(b, par, appendOne) })
	}
}

// benchStreams and benchIDs are shared by every run, so that each run appends to fresh streams.
var benchStreams, benchIDs atomic.Int64

func benchWriters(b *testing.B, par int, appendOne func(ctx context.Context, stream int, version uint64, id int64) (uint64, error)) {
	ctx := context.Background()
	b.SetParallelism(par)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		stream := int(benchStreams.Add(1))
		var version uint64
		for pb.Next() {
			v, err := appendOne(ctx, stream, version, benchIDs.Add(1))
			if err != nil {
				b.Error(err)
				return
			}
			version = v
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkReadQueueDeep reads a sync queue of 20,000 entries (one range each,
// from 40 conversations, as a busy user's queue is) from its start, a page of 500
// at a time, as a device that syncs from an old cursor does. entries/s is the
// figure; a page's time is ns/op.
func BenchmarkReadQueueDeep(b *testing.B) {
	const convs, perConv, page = 40, 500, 500
	s := mustOpen(b)
	ctx := context.Background()
	user := fmt.Sprint("deep", benchStreams.Add(1))
	if err := s.CreateUser(ctx, persistence.User{ID: user, DisplayName: user, PasswordHash: "x"}); err != nil {
		b.Fatal(err) // the queue's stream row, which appends lock
	}
	var wg sync.WaitGroup
	for c := range convs {
		wg.Go(func() {
			peer := fmt.Sprint(user, "p", c)
			conv := "dm:" + user + ":" + peer
			var version uint64
			for i := range perConv {
				id := benchIDs.Add(1)
				res, err := s.AppendConversation(ctx, persistence.ConversationAppend{Conversation: conv, Expected: version,
					Recipients: []string{user, peer},
					Messages: []*parleypb.Message{{MessageId: id, Conversation: conv, From: peer, ClientId: fmt.Sprint(i),
						Text: "benchmark text of a typical short chat message", Ts: id}}})
				if err != nil {
					b.Error(err)
					return
				}
				version = res.Version
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	after, read := uint64(0), 0
	for range b.N {
		p, err := s.ReadQueue(ctx, user, after, page)
		if err != nil {
			b.Fatal(err)
		}
		read += len(p.Entries)
		if after = p.Entries[len(p.Entries)-1].Seq; after >= convs*perConv {
			after = 0
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "entries/s")
}
