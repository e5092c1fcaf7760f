package pgceiling

import (
	"errors"
	"fmt"
	"time"
)

// Methods of writing rows.
const (
	MethodCopy   = "copy"   // pgx CopyFrom (COPY ... FROM STDIN BINARY)
	MethodInsert = "insert" // INSERT ... SELECT FROM unnest($1::text[], ...)
)

// Defaults applied by Measure to zero Config fields.
const (
	DefaultRowsPerStatement = 1000
	DefaultPayloadBytes     = 160 // a typical stored message (protobuf-encoded)
	DefaultConversations    = 10000
)

// Config says what to measure.
type Config struct {
	DatabaseURL string        // the server to measure; nothing else is connected to
	Method      string        // MethodCopy or MethodInsert
	Writers     int           // concurrent writers, one connection each; must be > 0
	Duration    time.Duration // how long the writers start statements; must be > 0
	// RowsPerStatement is the rows of each COPY or INSERT, each its own
	// transaction. Zero means DefaultRowsPerStatement (1000).
	RowsPerStatement int
	// PayloadBytes is the size of each row's payload (random bytes). Zero means
	// DefaultPayloadBytes (160).
	PayloadBytes int
	// Conversations is how many distinct conversations the rows go to, split
	// among the writers. Zero means DefaultConversations (10000).
	Conversations int
}

// ErrConfig is wrapped by every error about a Config.
var ErrConfig = errors.New("pgceiling: invalid config")

// withDefaults returns the config with defaults applied, or an error naming
// every problem.
func (c Config) withDefaults() (Config, error) {
	if c.RowsPerStatement == 0 {
		c.RowsPerStatement = DefaultRowsPerStatement
	}
	if c.PayloadBytes == 0 {
		c.PayloadBytes = DefaultPayloadBytes
	}
	if c.Conversations == 0 {
		c.Conversations = DefaultConversations
	}
	var errs []error
	check := func(bad bool, format string, a ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...))
		}
	}
	check(c.DatabaseURL == "", "no database URL")
	check(c.Method != MethodCopy && c.Method != MethodInsert, "method %q is neither %q nor %q", c.Method, MethodCopy, MethodInsert)
	check(c.Writers <= 0, "writers %d, want > 0", c.Writers)
	check(c.Duration <= 0, "duration %v, want > 0", c.Duration)
	check(c.RowsPerStatement < 0, "rows per statement %d, want > 0", c.RowsPerStatement)
	check(c.PayloadBytes < 0, "payload bytes %d, want > 0", c.PayloadBytes)
	check(c.Conversations < 0, "conversations %d, want > 0", c.Conversations)
	return c, errors.Join(errs...)
}
