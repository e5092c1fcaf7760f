package pgceiling

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Result is one measurement.
type Result struct {
	Method           string `json:"method"`
	Writers          int    `json:"writers"`
	RowsPerStatement int    `json:"rowsPerStatement"`
	PayloadBytes     int    `json:"payloadBytes"`
	Conversations    int    `json:"conversations"`

	Rows       int64         `json:"rows"`       // committed, and counted in the table afterwards
	Statements int64         `json:"statements"` // committed statements (each its own transaction)
	Elapsed    time.Duration `json:"elapsedNs"`  // first statement started to last one committed
	RowsPerSec float64       `json:"rowsPerSec"`
	Statement  Latency       `json:"statement"`  // per-statement latency, as each writer saw it
	WALBytes   int64         `json:"walBytes"`   // WAL the whole server wrote during the run
	TableBytes int64         `json:"tableBytes"` // the partitions with their indexes, at the end

	Server Server `json:"server"`
}

// Latency summarizes statement latencies in milliseconds.
type Latency struct {
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

// Server is the measured server's version and the settings that bound its
// commit rate.
type Server struct {
	Version           string `json:"version"`
	FSync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronousCommit"`
}

// latency summarizes durations (it sorts them).
func latency(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	ms := func(q float64) float64 {
		return float64(d[int(q*float64(len(d)-1))]) / float64(time.Millisecond)
	}
	return Latency{P50Ms: ms(0.50), P99Ms: ms(0.99), MaxMs: ms(1)}
}

// perRow is bytes divided by rows, or 0 without rows.
func perRow(bytes, rows int64) float64 {
	if rows == 0 {
		return 0
	}
	return float64(bytes) / float64(rows)
}

// MarkdownHeader is the header of the table that MarkdownRow rows belong to.
func MarkdownHeader() string {
	return "| method | writers | rows/stmt | payload B | rows | elapsed s | rows/s | stmts | stmt p50 ms | stmt p99 ms | WAL B/row | table B/row | fsync | synchronous_commit |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n"
}

// MarkdownRow renders the result as one row of the MarkdownHeader table.
func (r Result) MarkdownRow() string {
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %.2f | %.0f | %d | %.2f | %.2f | %.0f | %.0f | %s | %s |\n",
		r.Method, r.Writers, r.RowsPerStatement, r.PayloadBytes, r.Rows, r.Elapsed.Seconds(), r.RowsPerSec,
		r.Statements, r.Statement.P50Ms, r.Statement.P99Ms, perRow(r.WALBytes, r.Rows), perRow(r.TableBytes, r.Rows),
		r.Server.FSync, r.Server.SynchronousCommit)
}

// Markdown renders results as one table, with the server's version under it.
func Markdown(results ...Result) string {
	var b strings.Builder
	b.WriteString(MarkdownHeader())
	for _, r := range results {
		b.WriteString(r.MarkdownRow())
	}
	if len(results) > 0 {
		fmt.Fprintf(&b, "\nPostgreSQL %s; %d conversations, every statement its own transaction.\n",
			results[0].Server.Version, results[0].Conversations)
	}
	return b.String()
}
