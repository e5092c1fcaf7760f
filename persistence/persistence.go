// Package persistence defines what Parley stores and the errors its stores return.
//
// Grain state is event-sourced: a conversation's messages form one stream, each user's
// sync queue forms another. Every append names the stream version its writer last saw,
// so a second activation of the same grain (Proto.Actor does not guarantee single
// activation) can never write: its append fails with ErrConflict and the grain stops.
//
// Stores take a context on every blocking call and never log; packages above this one
// see ErrNotFound and ErrConflict, never a driver error type.
package persistence

import (
	"errors"

	"github.com/parleychat/parley/proto/parleypb"
)

var (
	// ErrNotFound means the row or stream asked for does not exist.
	ErrNotFound = errors.New("persistence: not found")
	// ErrConflict means a unique key is taken, or a stream moved past the expected version.
	ErrConflict = errors.New("persistence: conflict")
)

// ConversationAppend adds messages to a conversation's stream.
type ConversationAppend struct {
	Conversation string
	// Expected is the stream version the writer last saw (0 for a new stream).
	Expected uint64
	// Messages are new messages in message-id order, each with a message id, sender,
	// client id and timestamp. A message whose (sender, client id) is already in the
	// stream is skipped.
	Messages []*parleypb.Message
	// Event, when set, is a group membership event appended alone (no Messages).
	Event *parleypb.GroupEvent
}

// ConversationAppended is the outcome of a ConversationAppend.
type ConversationAppended struct {
	Version  uint64  // the stream version after the append
	Inserted []int64 // message ids written; the rest repeated a client id
}

// UserAppend adds messages to a user's sync queue.
type UserAppend struct {
	User     string
	Expected uint64 // the queue's last seq as the writer saw it
	// Messages in the order they take in the queue. A message already in the queue
	// (same message id) is skipped, so re-driven fan-out never duplicates an entry.
	Messages []*parleypb.Message
}

// UserAppended is the outcome of a UserAppend.
type UserAppended struct {
	Version uint64              // the queue's last seq after the append
	Entries []*parleypb.Message // the entries written, with Seq set, in seq order
}

// User is an account.
type User struct {
	ID           string
	DisplayName  string
	PasswordHash string
	LastSeen     int64 // Unix ms; 0 = never seen
}

// ConversationStream is the stream id of a conversation (for versions and snapshots).
func ConversationStream(conv string) string { return "c:" + conv }

// UserStream is the stream id of a user's sync queue.
func UserStream(user string) string { return "u:" + user }
