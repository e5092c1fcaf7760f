package wire

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Hand-written JSON output. Every object starts with a first member written by
// the caller; the helpers below append `,"key":value`. Keys are constant ASCII
// and need no escaping.

func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

// appendStr appends a string member.
func appendStr(b []byte, key, v string) []byte {
	return appendString(appendKey(b, key), v)
}

// appendOptStr appends a string member unless v is empty.
func appendOptStr(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendStr(b, key, v)
}

// appendUintID appends a 64-bit id or seq as a decimal string.
func appendUintID(b []byte, key string, v uint64) []byte {
	b = append(appendKey(b, key), '"')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '"')
}

// appendIntID appends a 64-bit message id as a decimal string.
func appendIntID(b []byte, key string, v int64) []byte {
	b = append(appendKey(b, key), '"')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '"')
}

// appendNum appends a number member (timestamps, limits).
func appendNum(b []byte, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, key), v, 10)
}

func appendBool(b []byte, key string, v bool) []byte {
	return strconv.AppendBool(appendKey(b, key), v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Like encoding/json it replaces
// invalid UTF-8 with U+FFFD and escapes U+2028 and U+2029; it does not escape
// HTML characters.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if literal(c) {
				i++
				continue
			}
			b = appendEscapedByte(append(b, s[start:i]...), c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// literal reports an ASCII byte that a JSON string holds as it is, unescaped.
func literal(c byte) bool { return c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' }

func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// Lenient input of 64-bit ids and seqs: a decimal string (what encoders send)
// or a JSON number, in both cases plain digits (no sign, fraction or exponent).

var (
	errNotInteger = errors.New("must be a decimal integer string")
	errOverflow   = errors.New("is out of range")
)

// isNull reports whether a raw member is absent or JSON null.
func isNull(raw []byte) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// parseUint parses a raw JSON member holding a non-negative id or seq.
func parseUint(raw []byte) (uint64, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	if len(raw) == 0 {
		return 0, errNotInteger
	}
	var v uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, errNotInteger
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, errOverflow
		}
		v = v*10 + d
	}
	return v, nil
}

// parseInt parses a raw JSON member holding a signed 64-bit id.
func parseInt(raw []byte) (int64, error) {
	neg := false
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	if len(raw) > 0 && raw[0] == '-' {
		neg, raw = true, raw[1:]
	}
	u, err := parseUint(raw)
	switch {
	case err != nil:
		return 0, err
	case neg && u <= 1<<63:
		return -int64(u), nil
	case !neg && u < 1<<63:
		return int64(u), nil
	}
	return 0, errOverflow
}

// isObject reports whether data's first non-space byte opens a JSON object.
func isObject(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}
