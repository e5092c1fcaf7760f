// Package textcheck decides whether a short text that other users are shown as a
// name (a display name, a group name) is acceptable: valid UTF-8 with no control,
// bidi-control or invisible characters. It checks; it never rewrites.
//
// Its functions are pure and safe for concurrent use. Length limits are the
// caller's: each kind of name has its own.
package textcheck

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Reasons a text is refused; Name wraps one of them.
var (
	// ErrInvalidUTF8 is a text that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("textcheck: not valid UTF-8")
	// ErrControl is a control character (general category Cc: U+0000-U+001F and
	// U+007F-U+009F, so tabs and newlines too) or a line or paragraph separator
	// (U+2028, U+2029).
	ErrControl = errors.New("textcheck: control character")
	// ErrBidi is a bidirectional formatting character, which can make a name
	// display as another: U+202A-U+202E (embeddings, overrides), U+2066-U+2069
	// (isolates), U+200E, U+200F (marks) and U+061C (Arabic letter mark).
	ErrBidi = errors.New("textcheck: bidirectional control character")
	// ErrInvisible is a zero-width character, which makes two names that look
	// the same differ: U+200B-U+200D, U+2060 and U+FEFF. (U+200D, the zero-width
	// joiner, is also what joins some emoji sequences; those are refused too.)
	ErrInvisible = errors.New("textcheck: zero-width character")
)

// Name checks s, a name shown to other users. It returns nil if s is
// acceptable, else an error wrapping one of [ErrInvalidUTF8], [ErrControl],
// [ErrBidi] or [ErrInvisible] whose text names the first offending character by
// its code point (never the text itself). It does not trim and does not check
// the length.
func Name(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return fmt.Errorf("%w at byte %d", ErrInvalidUTF8, i)
			}
		}
		if err := classify(r); err != nil {
			return fmt.Errorf("%w %U", err, r)
		}
	}
	return nil
}

// classify returns the reason r is refused, or nil.
func classify(r rune) error {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return ErrControl
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069',
		r == '\u200e', r == '\u200f', r == '\u061c':
		return ErrBidi
	case r >= '\u200b' && r <= '\u200d', r == '\u2060', r == '\ufeff':
		return ErrInvisible
	}
	return nil
}
