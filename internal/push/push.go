// Package push notifies devices that have no connection: the providers that carry a
// notification to a phone or a browser (an operator's webhook gateway, FCM, APNs,
// Web Push), behind one small interface, and the [Sender] that takes notifications
// due from the store's outbox and sends them, with retries.
//
// A notification is decided in the commit that puts a message into an offline
// user's sync queue: the store writes it to its outbox in the same transaction, one
// row per device, and later messages to that device before it is sent only count
// up and replace the preview (collapse). So a decision survives any node's crash:
// whichever node polls next sends it.
package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Providers, as a device registers them.
const (
	Webhook = "webhook"
	FCM     = "fcm"
	APNs    = "apns"
	WebPush = "webpush"
)

// Notification is what one push tells a device.
type Notification struct {
	// ID is the same on every try of one notification (user, device and the
	// latest message id), so that a receiver can drop a repeat.
	ID           string `json:"id"`
	User         string `json:"user"`
	Device       string `json:"device"`
	Conversation string `json:"conversation"`
	MessageID    int64  `json:"messageId,string"`
	From         string `json:"from"`
	// Preview is the latest message's text (clipped), or "" when previews are off.
	Preview string `json:"preview,omitempty"`
	// Count is how many messages this notification stands for (a burst collapsed).
	Count int `json:"count"`
	// Unread is how many entries of the user's sync queue the device has not
	// acknowledged (a badge).
	Unread int64 `json:"unread"`
	Ts     int64 `json:"ts"` // the latest message's time, Unix ms
}

// Target is where one device is pushed.
type Target struct {
	Provider string
	// Token is the provider's device token; for Web Push the subscription, as
	// the browser's PushSubscription.toJSON() gives it.
	Token string
}

// A Provider carries notifications to one kind of target. Send returns nil once
// the provider has accepted the notification, an *Error that says what to do
// otherwise. Providers are safe for concurrent use.
type Provider interface {
	// Check refuses a token that can never work (wrong shape, a Web Push
	// endpoint on a host not allowed), at registration.
	Check(token string) error
	Send(ctx context.Context, t Target, n Notification) error
}

// Kind is what to do after a failed send.
type Kind int

const (
	// Retry later (network errors, 5xx, 429): after RetryAfter if the provider said.
	Retry Kind = iota
	// Gone: the target is no longer valid (unregistered, bad token); disable it.
	Gone
	// Drop this notification; the target stays (a request the provider refuses).
	Drop
)

// Error is a failed send.
type Error struct {
	Kind       Kind
	RetryAfter time.Duration // the provider's Retry-After, 0 if none
	Status     int           // the HTTP status, 0 if none
	Reason     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("push: %s (status %d): %s", [...]string{"retry", "gone", "drop"}[e.Kind], e.Status, e.Reason)
}

// KindOf is the kind of a Send error: Retry for anything that is not an *Error.
func KindOf(err error) (Kind, time.Duration) {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind, e.RetryAfter
	}
	return Retry, 0
}

// HTTPError classifies a provider's HTTP answer other than 2xx: 429 and 5xx are
// Retry (with Retry-After), 404 and 410 are Gone, other 4xx are Drop. Providers
// refine it from their error bodies.
func HTTPError(resp *http.Response, reason string) *Error {
	e := &Error{Status: resp.StatusCode, Reason: reason, RetryAfter: RetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		e.Kind = Retry
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		e.Kind = Gone
	default:
		e.Kind = Drop
	}
	return e
}

// RetryAfter reads a Retry-After header (seconds, or an HTTP date); 0 if absent or
// unreadable. It is capped at a day.
func RetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(h); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 24*time.Hour)
}
