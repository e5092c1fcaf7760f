//go:build !race

package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/proto/parleypb"
)

// BenchmarkGroupFanout500 posts to a 500-member group and waits until every member's
// sync queue holds every message: deliveries/s counts queue entries written (500
// per message), the work fan-out on write does, with real grains and PostgreSQL.
func BenchmarkGroupFanout500(b *testing.B) {
	const members = 500
	users := make([]string, members)
	for i := range users {
		users[i] = fmt.Sprintf("m%03d", i)
	}
	e := startGrains(b, time.Minute, users...)
	res, err := e.deps.Request("group:bench", actors.KindConversation, &parleypb.GroupRequest{
		Op: parleypb.GroupRequest_CREATE, Group: "bench", By: users[0], Name: "bench", Members: users[1:]})
	if err != nil || res.(*parleypb.GroupResponse).Error != nil {
		b.Fatalf("creating the group: %v %v", err, res)
	}
	ctx := context.Background()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range b.N {
		wg.Add(1)
		go func() { // posts pipelined, as from many connections
			defer wg.Done()
			_, err := e.deps.Request("group:bench", actors.KindConversation, &parleypb.PostRequest{
				Conversation: "group:bench", From: users[i%members], Group: "bench", ClientId: fmt.Sprint("b", i), Text: "fan-out benchmark"})
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	want := int64(b.N) * members
	for {
		var n int64
		if err := e.store.Pool().QueryRow(ctx, `SELECT count(*) FROM user_entries`).Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n >= want {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}
