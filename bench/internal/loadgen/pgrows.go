package loadgen

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgStatLag is how long a table statistic may take to show: a PostgreSQL
// backend reports its counts when it goes idle, at most every 10 s
// (PGSTAT_IDLE_INTERVAL), so the counts are read this long after the writes.
const pgStatLag = 11 * time.Second

// RowStats is what the nodes wrote to PostgreSQL in the measured phase, from
// pg_stat_user_tables (rows inserted, updated and deleted; every table of the
// database, so that a write anywhere shows).
type RowStats struct {
	Written int64            `json:"written"`
	ByTable map[string]int64 `json:"byTable,omitempty"` // the tables written to
	Posts   uint64           `json:"posts"`             // the posts committed in the phase (the end marker included)
	PerPost float64          `json:"perPost"`
	Error   string           `json:"error,omitempty"`
}

// rowCounter reads the table statistics around the measured phase; nil when
// there is no database.
type rowCounter struct {
	url           string
	before, after map[string]int64
	err           error
}

func newRowCounter(url string) *rowCounter {
	if url == "" {
		return nil
	}
	return &rowCounter{url: url}
}

// start waits out the setup's pending statistics and reads the counts.
func (rc *rowCounter) start(ctx context.Context) {
	if sleepCtx(ctx, pgStatLag) {
		rc.before, rc.err = readRowCounts(ctx, rc.url)
	}
}

// end waits for the phase's statistics and reads the counts again.
func (rc *rowCounter) end(ctx context.Context) {
	if rc.err == nil && sleepCtx(ctx, pgStatLag) {
		rc.after, rc.err = readRowCounts(ctx, rc.url)
	}
}

// result is the rows written between start and end, per post committed.
func (rc *rowCounter) result(posts uint64) *RowStats {
	if rc == nil {
		return nil
	}
	s := &RowStats{Posts: posts, ByTable: map[string]int64{}}
	switch {
	case rc.err != nil:
		s.Error = rc.err.Error()
	case rc.before == nil || rc.after == nil:
		s.Error = "the counts were not read (the run ended early)"
	}
	if s.Error != "" {
		return s
	}
	for table, n := range rc.after {
		if d := n - rc.before[table]; d != 0 {
			s.ByTable[table] = d
			s.Written += d
		}
	}
	if posts > 0 {
		s.PerPost = float64(s.Written) / float64(posts)
	}
	return s
}

// readRowCounts reads every table's rows inserted, updated and deleted so far.
func readRowCounts(ctx context.Context, url string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("loadgen: -database-url: %w", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables`)
	if err != nil {
		return nil, fmt.Errorf("loadgen: reading pg_stat_user_tables: %w", err)
	}
	out := map[string]int64{}
	var table string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&table, &n}, func() error { out[table] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("loadgen: reading pg_stat_user_tables: %w", err)
	}
	return out, nil
}

// checkDatabaseURL accepts only a PostgreSQL on this machine: a loopback host
// or a Unix socket.
func checkDatabaseURL(url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("loadgen: -database-url: %w", err)
	}
	hosts := []string{cfg.Host}
	for _, fb := range cfg.Fallbacks {
		hosts = append(hosts, fb.Host)
	}
	for _, h := range hosts {
		if strings.HasPrefix(h, "/") || strings.EqualFold(h, "localhost") {
			continue
		}
		if ip, err := netip.ParseAddr(h); err != nil || !ip.Unmap().IsLoopback() {
			return fmt.Errorf("loadgen: -database-url: refusing host %q, which is not loopback", h)
		}
	}
	return nil
}

// tablesByRows lists a RowStats's tables, most written first.
func (s *RowStats) tablesByRows() string {
	type tr struct {
		table string
		n     int64
	}
	var all []tr
	for t, n := range s.ByTable {
		all = append(all, tr{t, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].table < all[j].table })
	parts := make([]string, 0, len(all))
	for _, x := range all {
		parts = append(parts, fmt.Sprintf("%s %d", x.table, x.n))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
