// Command pgceiling measures PostgreSQL's own insert ceiling on a table shaped
// like Parley's conversation_events, with COPY and with batched INSERTs, and
// prints a Markdown table. It connects only to the database it is given, where
// it creates a scratch schema and drops it before exiting. The logic is in
// bench/internal/pgceiling.
//
//	pgceiling -db postgres://postgres@127.0.0.1:5432/bench -method both -writers 4 -duration 10s [-rows 1000 -payload 160 -json r.json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleychat/parley/bench/internal/pgceiling"
)

func main() {
	var (
		cfg    pgceiling.Config
		method string
		jsonTo string
	)
	flag.StringVar(&cfg.DatabaseURL, "db", os.Getenv("DATABASE_URL"), "database URL (default $DATABASE_URL)")
	flag.StringVar(&method, "method", "both", "copy, insert or both (copy, then insert)")
	flag.IntVar(&cfg.Writers, "writers", 4, "concurrent writers, one connection each")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long each method runs")
	flag.IntVar(&cfg.RowsPerStatement, "rows", pgceiling.DefaultRowsPerStatement, "rows per COPY or INSERT, each its own transaction")
	flag.IntVar(&cfg.PayloadBytes, "payload", pgceiling.DefaultPayloadBytes, "payload bytes per row")
	flag.IntVar(&cfg.Conversations, "conversations", pgceiling.DefaultConversations, "distinct conversations the rows go to")
	flag.StringVar(&jsonTo, "json", "", "also write the results as JSON to this file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, method, jsonTo); err != nil {
		fmt.Fprintln(os.Stderr, "pgceiling:", err)
		os.Exit(1)
	}
}

// run measures each method in turn, prints the table and writes the JSON.
func run(ctx context.Context, cfg pgceiling.Config, method, jsonTo string) error {
	methods, err := parseMethod(method)
	if err != nil {
		return err
	}
	var results []pgceiling.Result
	for _, m := range methods {
		cfg.Method = m
		res, err := pgceiling.Measure(ctx, cfg)
		if err != nil {
			return fmt.Errorf("measuring %s: %w", m, err)
		}
		results = append(results, res)
	}
	fmt.Print(pgceiling.Markdown(results...))
	if jsonTo == "" {
		return nil
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(jsonTo, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}

func parseMethod(m string) ([]string, error) {
	switch m {
	case "both":
		return []string{pgceiling.MethodCopy, pgceiling.MethodInsert}, nil
	case pgceiling.MethodCopy, pgceiling.MethodInsert:
		return []string{m}, nil
	}
	return nil, errors.New("-method must be copy, insert or both")
}
