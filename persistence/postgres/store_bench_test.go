package postgres_test

import (
	"context"
	"fmt"
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
