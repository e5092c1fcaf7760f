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
			Messages: []*parleypb.Message{{MessageId: id, Conversation: conv, From: "a", ClientId: fmt.Sprint(id), Text: "benchmark text of a typical short chat message", Ts: id}}})
		return res.Version, err
	})
}

// BenchmarkAppendUserGroupCommit: the same for user sync queues.
func BenchmarkAppendUserGroupCommit(b *testing.B) {
	s := mustOpen(b)
	benchAppend(b, func(ctx context.Context, stream int, version uint64, id int64) (uint64, error) {
		res, err := s.AppendUser(ctx, persistence.UserAppend{User: fmt.Sprint("u", stream), Expected: version,
			Messages: []*parleypb.Message{{MessageId: id, Conversation: "dm:a:b", From: "a", ClientId: fmt.Sprint(id), Text: "benchmark text of a typical short chat message", Ts: id}}})
		return res.Version, err
	})
}

func benchAppend(b *testing.B, appendOne func(ctx context.Context, stream int, version uint64, id int64) (uint64, error)) {
	b.Helper()
	ctx := context.Background()
	var streams, ids atomic.Int64
	b.SetParallelism(32) // 64 writers on 2 cores: many grains waiting on commits
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		stream := int(streams.Add(1))
		var version uint64
		for pb.Next() {
			v, err := appendOne(ctx, stream, version, ids.Add(1))
			if err != nil {
				b.Error(err)
				return
			}
			version = v
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
