package postgres

import (
	"context"
	"testing"

	"github.com/parleychat/parley/internal/testenv"
)

// TestSessionSettings checks the settings every connection of both pools gets:
// without them a growing table is scanned whole, or a read compiled by JIT for
// longer than it runs.
func TestSessionSettings(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, testenv.DatabaseURL(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct{ setting, reads, writes string }{
		{"jit", "off", "off"},
		{"enable_seqscan", "off", "off"},
		{"plan_cache_mode", "force_generic_plan", "force_generic_plan"},
		{"enable_nestloop", "on", "off"},
	} {
		for pool, want := range map[string]string{"reads": tc.reads, "writes": tc.writes} {
			p := s.pool
			if pool == "writes" {
				p = s.writes
			}
			var got string
			if err := p.QueryRow(ctx, "SELECT current_setting($1)", tc.setting).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s pool: %s = %s, want %s", pool, tc.setting, got, want)
			}
		}
	}
}
