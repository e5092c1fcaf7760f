package textcheck

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestName(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want error // nil: accepted
	}{
		{"ascii", "Alice <A> & co", nil},
		{"empty", "", nil},
		{"accents and CJK", "Zoë 張偉", nil},
		{"emoji", "party 🎉", nil},
		{"U+FFFD itself", "a\ufffdb", nil},
		{"right-to-left script", "مرحبا", nil},
		{"NUL", "a\x00b", ErrControl},
		{"newline", "a\nb", ErrControl},
		{"tab", "a\tb", ErrControl},
		{"DEL", "a\x7fb", ErrControl},
		{"C1 control", "a\u0085b", ErrControl},
		{"line separator", "a\u2028b", ErrControl},
		{"paragraph separator", "a\u2029b", ErrControl},
		{"RLO", "admin\u202e", ErrBidi},
		{"LRE", "\u202aa", ErrBidi},
		{"PDF", "a\u202c", ErrBidi},
		{"LRI", "a\u2066b", ErrBidi},
		{"PDI", "a\u2069b", ErrBidi},
		{"LRM", "a\u200eb", ErrBidi},
		{"RLM", "a\u200fb", ErrBidi},
		{"ALM", "a\u061cb", ErrBidi},
		{"ZWSP", "ad\u200bmin", ErrInvisible},
		{"ZWNJ", "a\u200cb", ErrInvisible},
		{"ZWJ", "a\u200db", ErrInvisible},
		{"word joiner", "a\u2060b", ErrInvisible},
		{"BOM", "\ufeffa", ErrInvisible},
		{"invalid byte", "a\xffb", ErrInvalidUTF8},
		{"truncated sequence", "a\xe2\x82", ErrInvalidUTF8},
		{"encoded surrogate", "a\xed\xa0\x80", ErrInvalidUTF8},
		{"overlong", "\xc0\xaf", ErrInvalidUTF8},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Name(c.in)
			if c.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, c.want)
		})
	}
}

func TestNameErrorNamesTheCodePoint(t *testing.T) {
	require.EqualError(t, Name("x\u202ey"), "textcheck: bidirectional control character U+202E")
	require.EqualError(t, Name("ab\xff"), "textcheck: not valid UTF-8 at byte 2")
}
