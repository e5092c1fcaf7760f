// Package pgceiling measures PostgreSQL's own insert ceiling on a table shaped
// like Parley's conversation_events: the rate our persistence benchmarks are held
// against.
//
// [Measure] creates a scratch schema of its own (pgceiling_<pid>_<random>) holding
// a copy of conversation_events (same columns, types, primary key, indexes and
// 16-way hash partitioning as persistence/postgres/migrations), runs
// Config.Writers goroutines for Config.Duration, each on its own connection,
// writing Config.RowsPerStatement rows per statement either with COPY (pgx
// CopyFrom) or with one INSERT ... SELECT FROM unnest(...). Every statement
// commits on its own, durably as the server is configured: the package never
// changes synchronous_commit and never uses UNLOGGED tables. Afterwards it counts
// the rows in the table, which must equal the rows it reports, and drops the
// schema, also when it fails or its context is cancelled.
//
// Rows have realistic keys: many direct conversations ("dm:<a>:<b>"), each with
// its own increasing version, snowflake-like increasing message ids, a client id
// per message and a random payload of Config.PayloadBytes.
//
// Measure connects only to Config.DatabaseURL. It is safe to call Measure from
// several goroutines (each run has its own schema), but runs at the same time
// share the server and so measure each other.
package pgceiling
