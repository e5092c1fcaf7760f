//go:build !race

package actors_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// BenchmarkConversationMemory activates 10,000 direct conversations, each with one
// message committed (and, to count only the conversation grains, no live pushes,
// which would activate the users' grains too), and reports the Go heap each active
// conversation grain holds: ours and Proto.Actor's bookkeeping for it together.
func BenchmarkConversationMemory(b *testing.B) {
	const n = 10000
	e := startGrains(b, time.Hour)
	e.deps.Settings.HoldDelivery = true
	ctx := context.Background()
	if _, err := e.store.Pool().Exec(ctx, `WITH u AS (
		INSERT INTO users (id, display_name, password_hash)
		SELECT 'm' || i, 'm', 'x' FROM generate_series(0, $1 + 1) i RETURNING id
	) INSERT INTO streams (id, version) SELECT 'u:' || id, 0 FROM u`, 2*n); err != nil {
		b.Fatal(err)
	}
	post := func(i int) error {
		from, to := fmt.Sprint("m", 2*i), fmt.Sprint("m", 2*i+1)
		conv := convid.DirectID(from, to)
		_, err := actors.Call[*parleypb.PostResponse](e.deps, conv, actors.KindConversation,
			&parleypb.PostRequest{Conversation: conv, From: from, To: to, ClientId: "c", Text: "hello there"})
		return err
	}
	if err := post(0); err != nil { // warm up the cluster's own actors
		b.Fatal(err)
	}
	before := heapInUse()
	b.ResetTimer()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := post(i); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if got := e.deps.Grains.Count(actors.KindConversation); got != n+1 {
		b.Fatalf("%d conversation grains active, want %d", got, n+1)
	}
	b.ReportMetric(float64(heapInUse()-before)/n, "B/conversation")
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
