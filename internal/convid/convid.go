// Package convid names conversations: "dm:<a>:<b>" for a direct conversation
// (a < b in byte order) and "group:<id>" for a group, as PROTOCOL.md fixes them.
// Group ids are made by the server (NewGroupID), so a group id of any other shape
// names no group and is refused before anything is looked up.
package convid

import (
	"crypto/rand"
	"encoding/base32"
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
	// Channel is a channel: a conversation of up to limits.maxChannelMembers whose
	// messages are stored once and read by its members (fan-out on read).
	Channel = "channel"
)

// ErrMalformed is returned for a string that is no conversation id.
var ErrMalformed = errors.New("convid: malformed conversation id")

// ID is a parsed conversation id.
type ID struct {
	Kind    string   // Direct, Group or Channel
	Members []string // Direct: the two users, sorted
	Group   string   // Group: the group id; Channel: the channel id
}

// DirectID is the id of the direct conversation between a and b.
func DirectID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return Direct + ":" + a + ":" + b
}

// GroupID is the conversation id of group g.
func GroupID(g string) string { return Group + ":" + g }

// ChannelID is the conversation id of channel c (c is a group-shaped id: NewGroupID
// makes both).
func ChannelID(c string) string { return Channel + ":" + c }

// Parse splits a conversation id into its kind and, for a direct conversation, its
// two members; for a group, the group id.
func Parse(id string) (ID, error) {
	switch {
	case strings.HasPrefix(id, Direct+":"):
		a, b, ok := strings.Cut(strings.TrimPrefix(id, Direct+":"), ":")
		if !ok || !UserID.MatchString(a) || !UserID.MatchString(b) || a >= b {
			return ID{}, ErrMalformed
		}
		return ID{Kind: Direct, Members: []string{a, b}}, nil
	case strings.HasPrefix(id, Group+":"):
		g := strings.TrimPrefix(id, Group+":")
		if !ValidGroupID(g) {
			return ID{}, ErrMalformed
		}
		return ID{Kind: Group, Group: g}, nil
	case strings.HasPrefix(id, Channel+":"):
		c := strings.TrimPrefix(id, Channel+":")
		if !ValidGroupID(c) {
			return ID{}, ErrMalformed
		}
		return ID{Kind: Channel, Group: c}, nil
	}
	return ID{}, ErrMalformed
}

// groupIDLen is the length of a group id: 10 random bytes in base32.
const groupIDLen = 16

var groupIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewGroupID returns a fresh group id: 16 characters of lower-case base32 (80
// random bits).
func NewGroupID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return groupIDEncoding.EncodeToString(b[:])
}

// ValidGroupID reports whether g has the shape of a group id the server made.
func ValidGroupID(g string) bool {
	if len(g) != groupIDLen {
		return false
	}
	for i := 0; i < len(g); i++ {
		if c := g[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}
