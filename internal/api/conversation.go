package api

import (
	"errors"
	"regexp"
	"strings"
)

// UserIDPattern is what a user id (the username) must match.
var UserIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

// Conversation kinds returned by [ParseConversation].
const (
	KindDirect = "dm"
	KindGroup  = "group"
)

// maxGroupID bounds the id part of a group conversation id, in bytes.
const maxGroupID = 64

// ErrBadConversation is returned by [ParseConversation] for a malformed id.
var ErrBadConversation = errors.New("api: malformed conversation id")

// DirectConversation returns the id of the direct conversation between users
// a and b: "dm:<min>:<max>" in byte order.
func DirectConversation(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return KindDirect + ":" + a + ":" + b
}

// ParseConversation splits a conversation id. "dm:<a>:<b>" (a < b, both valid
// user ids) gives [KindDirect] and [a b]; "group:<id>" (id of 1 to 64 bytes,
// no colon, space or control character) gives [KindGroup] and nil members.
// Anything else wraps [ErrBadConversation].
func ParseConversation(id string) (kind string, members []string, err error) {
	if rest, ok := strings.CutPrefix(id, KindDirect+":"); ok {
		a, b, ok := strings.Cut(rest, ":")
		if !ok || !UserIDPattern.MatchString(a) || !UserIDPattern.MatchString(b) || a >= b {
			return "", nil, ErrBadConversation
		}
		return KindDirect, []string{a, b}, nil
	}
	if rest, ok := strings.CutPrefix(id, KindGroup+":"); ok && validGroupID(rest) {
		return KindGroup, nil, nil
	}
	return "", nil, ErrBadConversation
}

func validGroupID(s string) bool {
	if s == "" || len(s) > maxGroupID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == ':' || c == 0x7f {
			return false
		}
	}
	return true
}
