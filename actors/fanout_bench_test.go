//go:build !race

package actors_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkGroupFanout500 posts to a 500-member group until every post is answered,
// which means committed into every member's sync queue: deliveries/s counts queue
// entries written (500 per message), with real grains and PostgreSQL.
func BenchmarkGroupFanout500(b *testing.B) {
	const members = 500
	users := make([]string, members)
	for i := range users {
		users[i] = fmt.Sprintf("m%03d", i)
	}
	e := startGrains(b, time.Minute, users...)
	const group = "benchbenchbenchb"
	e.createGroup(b, group, users)
	ctx := context.Background()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range b.N {
		wg.Add(1)
		go func() { // posts pipelined, as from many connections
			defer wg.Done()
			if _, err := e.postGroup(group, users[i%members], fmt.Sprint("b", i)); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	want := int64(b.N) * members
	var n int64 // every answered post is in every queue already
	if err := e.store.Pool().QueryRow(ctx, `SELECT COALESCE(sum(count), 0) FROM queue_ranges`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n != want {
		b.Fatalf("%d queue entries, want %d", n, want)
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}
