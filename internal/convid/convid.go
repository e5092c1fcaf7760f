// Package convid names conversations: "dm:<a>:<b>" for a direct conversation
// (a < b in byte order) and "group:<id>" for a group, as PROTOCOL.md fixes them.
package convid

import (
	"errors"
	"regexp"
	"strings"
)

// UserID is the pattern of a user id (the username).
var UserID = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

// Kinds of conversation.
const (
	Direct = "dm"
	Group  = "group"
)

// ErrMalformed is returned for a string that is no conversation id.
var ErrMalformed = errors.New("convid: malformed conversation id")

// DirectID is the id of the direct conversation between a and b.
func DirectID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return Direct + ":" + a + ":" + b
}

// Parse splits a conversation id into its kind and, for a direct conversation, its
// two members; for a group, the group id.
func Parse(id string) (kind string, members []string, group string, err error) {
	switch {
	case strings.HasPrefix(id, Direct+":"):
		a, b, ok := strings.Cut(strings.TrimPrefix(id, Direct+":"), ":")
		if !ok || !UserID.MatchString(a) || !UserID.MatchString(b) || a >= b {
			return "", nil, "", ErrMalformed
		}
		return Direct, []string{a, b}, "", nil
	case strings.HasPrefix(id, Group+":"):
		g := strings.TrimPrefix(id, Group+":")
		if !validGroupID(g) {
			return "", nil, "", ErrMalformed
		}
		return Group, nil, g, nil
	}
	return "", nil, "", ErrMalformed
}

// validGroupID: 1 to 64 bytes, no colon, space or control character.
func validGroupID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == ':' || c == 0x7f {
			return false
		}
	}
	return true
}
