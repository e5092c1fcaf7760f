package pgceiling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

// table is the name of the measured table inside the scratch schema.
const table = "conversation_events"

// partitions is the hash partition count of the migration.
const partitions = 16

// tableDDL is conversation_events as persistence/postgres/migrations leaves it
// (0001_init.sql, plus the kind column and partial index of 0002_groups.sql),
// with %[1]s standing for the quoted scratch schema. TestScratchTableMatchesMigration
// fails when the two drift apart.
const tableDDL = `
CREATE TABLE %[1]s.conversation_events (
    conversation text     NOT NULL,
    version      bigint   NOT NULL,
    message_id   bigint   NOT NULL,
    sender       text     NOT NULL,
    client_id    text     NOT NULL,
    ts           bigint   NOT NULL,
    payload      bytea    NOT NULL,
    kind         smallint NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation, version)
) PARTITION BY HASH (conversation);
CREATE UNIQUE INDEX conversation_events_message ON %[1]s.conversation_events (conversation, message_id);
CREATE UNIQUE INDEX conversation_events_client ON %[1]s.conversation_events (conversation, sender, client_id);
CREATE INDEX conversation_events_membership ON %[1]s.conversation_events (conversation, version) WHERE kind <> 0;
`

// partitionDDL creates partition %[2]d of %[3]d in schema %[1]s.
const partitionDDL = `CREATE TABLE %[1]s.conversation_events_p%[2]d PARTITION OF %[1]s.conversation_events
    FOR VALUES WITH (MODULUS %[3]d, REMAINDER %[2]d)`

// newSchemaName returns pgceiling_<pid>_<8 random hex digits>.
func newSchemaName() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("pgceiling_%d_%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// createSchema creates the scratch schema and its partitioned table in one
// transaction.
func createSchema(ctx context.Context, conn *pgx.Conn, schema string) error {
	q := pgx.Identifier{schema}.Sanitize()
	stmts := []string{"CREATE SCHEMA " + q, fmt.Sprintf(tableDDL, q)}
	for i := range partitions {
		stmts = append(stmts, fmt.Sprintf(partitionDDL, q, i, partitions))
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, strings.Join(stmts, ";\n"))
		return err
	})
	if err != nil {
		return fmt.Errorf("creating scratch schema %s: %w", schema, err)
	}
	return nil
}

// dropSchema drops the scratch schema and everything in it.
func dropSchema(ctx context.Context, conn *pgx.Conn, schema string) error {
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
		return fmt.Errorf("dropping scratch schema %s: %w", schema, err)
	}
	return nil
}

// tableName is the measured table's identifier.
func tableName(schema string) pgx.Identifier { return pgx.Identifier{schema, table} }

// countRows counts the rows in the measured table.
func countRows(ctx context.Context, conn *pgx.Conn, schema string) (int64, error) {
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tableName(schema).Sanitize()).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting rows: %w", err)
	}
	return n, nil
}

// tableBytes is the on-disk size of the measured table's partitions, with their
// indexes and TOAST.
func tableBytes(ctx context.Context, conn *pgx.Conn, schema string) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint
		FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
		WHERE s.nspname = $1 AND c.relkind = 'r'`, schema).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sizing table: %w", err)
	}
	return n, nil
}
