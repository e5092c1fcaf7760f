// Package persistence defines what Parley stores and the errors its stores return.
//
// Grain state is event-sourced: a conversation's messages and membership events form
// one stream. Every append names the stream version its writer last saw, so a second
// activation of the same grain (Proto.Actor does not guarantee single activation) can
// never write: its append fails with ErrConflict and the grain stops. Each user's sync
// queue is written by the appends of its conversations, in the same transaction as
// their messages: the store assigns the queue's seqs, gapless, under the queue's row
// lock, so a queue has no writer of its own to lose entries between the two.
//
// Stores take a context on every blocking call and never log; packages above this one
// see ErrNotFound and ErrConflict, never a driver error type.
package persistence

import (
	"errors"
	"time"

	"github.com/parleychat/parley/proto/parleypb"
)

var (
	// ErrNotFound means the row or stream asked for does not exist.
	ErrNotFound = errors.New("persistence: not found")
	// ErrConflict means a unique key is taken, or a stream moved past the expected version.
	ErrConflict = errors.New("persistence: conflict")
	// ErrUnavailable means the store could not be reached or is shutting down; the
	// same call may succeed later.
	ErrUnavailable = errors.New("persistence: store unavailable")
	// ErrLimit means a write would take a count past its configured limit.
	ErrLimit = errors.New("persistence: over a limit")
)

// ConversationAppend adds messages to a conversation's stream and, in the same
// transaction, to the sync queue of each recipient: the messages are in every
// recipient's queue exactly when they are committed, so no fan-out step can be lost.
type ConversationAppend struct {
	Conversation string
	// Expected is the stream version the writer last saw (0 for a new stream).
	Expected uint64
	// Messages are new messages in message-id order, each with a message id, sender,
	// client id and timestamp. A message whose (sender, client id) is already in the
	// stream is skipped.
	Messages []*parleypb.Message
	// Recipients are the users whose sync queues receive the messages written (the
	// conversation's members, the sender included), each once.
	Recipients []string
	// Event, when set, is a group membership event appended alone (no Messages, no
	// Recipients).
	Event *parleypb.GroupEvent
	// ChannelEvent, when set, is a channel event appended alone; the channel's
	// projection (channels, channel_members) moves with it in the same commit.
	ChannelEvent *parleypb.ChannelEvent
}

// ConversationAppended is the outcome of a ConversationAppend.
type ConversationAppended struct {
	Version  uint64  // the stream version after the append
	Inserted []int64 // message ids written, ascending; the rest repeated a client id
	// LastSeq is, per recipient, the seq of the last message written into its queue:
	// the messages written take the seqs LastSeq-len(Inserted)+1 .. LastSeq, in id
	// order. Empty when nothing was written.
	LastSeq map[string]uint64
}

// QueuePage is a page of a user's sync queue.
type QueuePage struct {
	Cursor  uint64              // the device's stored cursor, when read with it
	Entries []*parleypb.Message // in seq order, each with Seq set
	End     uint64              // the queue's last seq when the page was read
}

// User is an account.
type User struct {
	ID           string
	DisplayName  string
	PasswordHash string
	LastSeen     int64 // Unix ms; 0 = never seen
}

// ConversationStream is the stream id of a conversation (the key of its appends).
func ConversationStream(conv string) string { return "c:" + conv }

// UserStream is the stream id of a user's sync queue (its row is what an append to
// the queue locks).
func UserStream(user string) string { return "u:" + user }

// Presence visibility: who sees a user's status and last-seen time.
const (
	VisibleToEveryone = "everyone" // anyone (the default)
	VisibleToContacts = "contacts" // only the users this user added
	VisibleToNobody   = "nobody"   // no one: always offline, no last-seen time
)

// Shows reports whether a user whose setting is visibility shows its presence to a
// viewer; addedViewer is whether the user added the viewer (what VisibleToContacts
// asks). The one rule for REST answers and presence frames.
func Shows(visibility string, addedViewer bool) bool {
	switch visibility {
	case VisibleToEveryone:
		return true
	case VisibleToContacts:
		return addedViewer
	default:
		return false
	}
}

// Contact is a user as one of its contacts sees it.
type Contact struct {
	ID          string
	DisplayName string
	LastSeen    int64  // Unix ms, stored; 0 = never seen
	Visibility  string // the contact's own setting, one of the Visible* constants
	AddedMe     bool   // the contact has added the user too (for VisibleToContacts)
}

// Receipt statuses: a member has a message (on any device), or has read it.
const (
	Delivered = "delivered"
	Read      = "read"
)

// A ReceiptMove is a member's watermark in a conversation moving forward: what an
// acknowledgement or a read makes, and what is told to the users it is news to.
type ReceiptMove struct {
	Conversation string
	User         string // whose watermark moved
	Status       string // Delivered or Read
	UpTo         int64  // the new watermark, a message id
	// Senders are the senders, other than User, of messages the move newly covers:
	// the users the receipt is news to.
	Senders []string
}

// Watermark is one member's receipts in a conversation (message ids; 0: none).
type Watermark struct {
	User      string
	Delivered int64
	Read      int64
}

// ByAll returns the lowest delivered and read watermarks over every member but
// except: what the other members all have and have all read (0 when there are
// none).
func ByAll(ws []Watermark, except string) (delivered, read int64) {
	first := true
	for _, w := range ws {
		if w.User == except {
			continue
		}
		if first {
			delivered, read, first = w.Delivered, w.Read, false
			continue
		}
		delivered, read = min(delivered, w.Delivered), min(read, w.Read)
	}
	return delivered, read
}

// PushDue is a notification due to one device, claimed from the push outbox by the
// node that sends it.
type PushDue struct {
	User, Device    string
	Provider, Token string            // the device's push target; "" if it has none any more
	Latest          *parleypb.Message // the latest message it stands for; nil if none is left
	Count           int               // messages it stands for (queue entries, muted conversations' left out)
	Unread          int64             // the user's queue entries after the device's cursor
	FromSeq, EndSeq uint64            // the queue entries it stands for, as claimed
	Attempts        int               // tries before this one
	CreatedAt       int64             // Unix ms (the store's clock) of its first message
	Now             int64             // Unix ms (the store's clock) when it was claimed
}

// PushOutcome is what became of a claimed notification.
type PushOutcome int

const (
	PushSent     PushOutcome = iota // accepted by the provider: the next notification starts after it
	PushRetry                       // try again at the time given
	PushDropped                     // not sent, never will be: the next starts after it
	PushEmpty                       // nothing to tell (no entries, or no target): the row goes if the queue is quiet
	PushDisabled                    // the target is no longer valid: it is cleared, and the row goes
)

// Channel roles, as stored (channel_members.role).
const (
	ChannelMember = 0
	ChannelAdmin  = 1
	ChannelOwner  = 2
)

// Channel is a channel's settings and size, from the projection of its events.
type Channel struct {
	ID          string // the conversation id, channel:<id>
	Name        string
	Owner       string
	Mode        string // broadcast or open
	Public      bool
	Admins      []string // sorted; the owner is not among them
	MemberCount int64
	CreatedID   int64
	// LastMessageID is the id of the channel's last message (0: none).
	LastMessageID int64
}

// Channel modes: who posts.
const (
	ChannelBroadcast = "broadcast" // the owner and admins
	ChannelOpen      = "open"      // every member, within a per-member rate
)

// RoleName is the protocol's name of a channel role.
func RoleName(role int) string {
	switch role {
	case ChannelOwner:
		return "owner"
	case ChannelAdmin:
		return "admin"
	}
	return "member"
}

// UserStored is what the store holds of a user, for the admin endpoint.
type UserStored struct {
	LastSeen      int64  // Unix ms; 0: never
	QueueHead     uint64 // the highest seq in the user's sync queue
	Devices       []DeviceStored
	Contacts      int
	PendingPushes int
	OnlineHolder  string // the node lease holder whose online row the user has ("": none)
	OnlineSince   int64  // Unix ms
}

// DeviceStored is one of a user's devices as stored: its saved cursor and push
// target.
type DeviceStored struct {
	ID           string
	Cursor       uint64
	PushProvider string
	CreatedAt    time.Time
}

// MemberBacklog is a member's receipt watermarks in a conversation and the number
// of the conversation's messages after its delivered watermark (capped).
type MemberBacklog struct {
	User            string
	Delivered, Read int64
	Backlog         int
}
