package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx := context.Background()
	sqlText, _ := os.ReadFile(os.Args[1])
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil { panic(err) }
	for _, s := range []string{"SET plan_cache_mode = force_generic_plan", "SET enable_nestloop = off"} {
		if _, err := conn.Exec(ctx, s); err != nil { panic(err) }
	}
	base := time.Now().UnixNano() % 1000000000
	seq := int64(0)
	for _, n := range []int{1, 5, 10, 25, 50, 100, 200} {
		for _, per := range []int{1, 4} {
		var total time.Duration
		reps := 20
		for rep := 0; rep < reps; rep++ {
			var convs, senders, clients, users []string
			var expected, rowOps, ids, ts, userOps []int64
			var payloads [][]byte
			var kinds []int16
			for i := 0; i < n; i++ {
				seq++
				a, b := fmt.Sprintf("x%da%d", base, seq), fmt.Sprintf("x%db%d", base, seq)
				convs = append(convs, "dm:"+a+":"+b); expected = append(expected, 0)
				for j := 0; j < per; j++ {
					seq++
					rowOps = append(rowOps, int64(i+1)); ids = append(ids, base*1000000+seq); ts = append(ts, 1)
					senders = append(senders, a); clients = append(clients, fmt.Sprint(seq))
					payloads = append(payloads, []byte("benchmark text of a typical short chat message, as protobuf")); kinds = append(kinds, 0)
				}
				userOps = append(userOps, int64(i+1), int64(i+1)); users = append(users, a, b)
			}
			tx, _ := conn.Begin(ctx)
			start := time.Now()
			rows, err := tx.Query(ctx, string(sqlText), convs, expected, rowOps, ids, senders, clients, ts, payloads, kinds, userOps, users)
			if err != nil { panic(err) }
			for rows.Next() {}
			if rows.Err() != nil { panic(rows.Err()) }
			total += time.Since(start)
			tx.Rollback(ctx)
		}
		avg := total / time.Duration(reps)
		fmt.Printf("ops %4d × %d msgs: %8.2f ms/statement, %6.1f µs/msg\n", n, per, float64(avg)/1e6, float64(avg)/1e3/float64(n*per))
		}
	}
}
