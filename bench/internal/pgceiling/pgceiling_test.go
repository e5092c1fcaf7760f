package pgceiling

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence/postgres"
)

var methods = []string{MethodCopy, MethodInsert}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// scratchSchemas lists the pgceiling schemas in the database.
func scratchSchemas(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pgceiling%'")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestMeasureReportsRowsAndDropsSchema(t *testing.T) {
	for _, method := range methods {
		t.Run(method, func(t *testing.T) {
			url := testenv.DatabaseURL(t)
			res, err := Measure(testenv.Context(t, time.Minute), Config{DatabaseURL: url, Method: method, Writers: 2, Duration: time.Second})
			require.NoError(t, err)
			require.Equal(t, method, res.Method)
			require.Positive(t, res.Rows)
			require.Equal(t, res.Statements*DefaultRowsPerStatement, res.Rows)
			require.GreaterOrEqual(t, res.Elapsed, time.Second)
			require.Positive(t, res.RowsPerSec)
			require.Positive(t, res.WALBytes)
			require.Positive(t, res.TableBytes)
			require.NotEmpty(t, res.Server.Version)
			require.Empty(t, scratchSchemas(t, mustConnect(t, url)))
			require.Contains(t, Markdown(res), "| "+method+" | 2 | 1000 | 160 | ")
		})
	}
}

// TestTableHoldsTheReportedRows runs the writers in a schema the test owns, and
// counts what they left in it.
func TestTableHoldsTheReportedRows(t *testing.T) {
	for _, method := range methods {
		t.Run(method, func(t *testing.T) {
			ctx := testenv.Context(t, time.Minute)
			conn := mustConnect(t, testenv.DatabaseURL(t))
			cfg, err := Config{DatabaseURL: conn.Config().ConnString(), Method: method, Writers: 2,
				Duration: time.Second, RowsPerStatement: 300, Conversations: 50}.withDefaults()
			require.NoError(t, err)
			schema := newSchemaName()
			require.NoError(t, createSchema(ctx, conn, schema))
			res, err := measureIn(ctx, conn, cfg, schema)
			require.NoError(t, err)
			require.Positive(t, res.Rows)

			var rows, ids, convs, gapless int64
			require.NoError(t, conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT message_id), count(DISTINCT conversation),
				count(*) FILTER (WHERE version = n) FROM (SELECT *, row_number() OVER (PARTITION BY conversation ORDER BY version) AS n
				FROM `+tableName(schema).Sanitize()+`) e`).Scan(&rows, &ids, &convs, &gapless))
			require.Equal(t, res.Rows, rows, "rows in the table")
			require.Equal(t, rows, ids, "distinct message ids")
			require.Equal(t, int64(50), convs, "conversations")
			require.Equal(t, rows, gapless, "versions 1..n per conversation")

			require.NoError(t, dropSchema(ctx, conn, schema))
			require.Empty(t, scratchSchemas(t, conn))
		})
	}
}

func TestMeasureDropsSchemaWhenCancelled(t *testing.T) {
	url := testenv.DatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Measure(ctx, Config{DatabaseURL: url, Method: MethodInsert, Writers: 2, Duration: time.Minute})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, scratchSchemas(t, mustConnect(t, url)))
}

func TestMeasureRejectsBadConfig(t *testing.T) {
	const url = "postgres://never-connected.invalid/x" // validation comes first
	ok := Config{DatabaseURL: url, Method: MethodCopy, Writers: 1, Duration: time.Second}
	cases := map[string]func(c *Config){
		"bad method":       func(c *Config) { c.Method = "upsert" },
		"no method":        func(c *Config) { c.Method = "" },
		"zero writers":     func(c *Config) { c.Writers = 0 },
		"negative writers": func(c *Config) { c.Writers = -1 },
		"zero duration":    func(c *Config) { c.Duration = 0 },
		"no url":           func(c *Config) { c.DatabaseURL = "" },
		"negative rows":    func(c *Config) { c.RowsPerStatement = -5 },
		"negative payload": func(c *Config) { c.PayloadBytes = -1 },
		"negative convs":   func(c *Config) { c.Conversations = -1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mutate(&cfg)
			_, err := Measure(context.Background(), cfg)
			require.ErrorIs(t, err, ErrConfig)
		})
	}
}

// TestScratchTableMatchesMigration compares the scratch table with
// conversation_events as the store's migrations create it.
func TestScratchTableMatchesMigration(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	url := testenv.DatabaseURL(t)
	store, err := postgres.Open(ctx, url, postgres.Options{})
	require.NoError(t, err)
	store.Close()
	conn := mustConnect(t, url)
	schema := newSchemaName()
	require.NoError(t, createSchema(ctx, conn, schema))
	t.Cleanup(func() { _ = dropSchema(context.Background(), conn, schema) })
	require.Equal(t, describe(t, conn, "public"), describe(t, conn, schema))
}

// describe lists conversation_events's columns, constraints, indexes, partition
// key and partitions in schema, with the schema name left out.
func describe(t *testing.T, conn *pgx.Conn, schema string) []string {
	t.Helper()
	rel := tableName(schema).Sanitize()
	queries := []string{
		`SELECT format('%s %s notnull=%s default=%s', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			pg_get_expr(d.adbin, d.adrelid)) FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		`SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY 1`,
		`SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`,
		`SELECT pg_get_partkeydef($1::regclass)`,
		`SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
	}
	var out []string
	for _, q := range queries {
		rows, err := conn.Query(context.Background(), q, rel)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, l := range lines {
			out = append(out, strings.ReplaceAll(l, schema+".", "SCHEMA."))
		}
	}
	require.Len(t, out, 8+1+4+1+partitions, "columns, primary key, indexes, partition key, partitions")
	return out
}
