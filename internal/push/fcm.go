package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/parleychat/parley/internal/config"
)

const (
	// fcmScope is the OAuth 2.0 scope that lets a service account send messages.
	fcmScope = "https://www.googleapis.com/auth/firebase.messaging"
	// fcmMaxToken is the longest registration token Check accepts, in bytes.
	fcmMaxToken = 4096
	// fcmMaxErrorBody bounds how much of an answer is read.
	fcmMaxErrorBody = 64 << 10
	// fcmNoPreview is the notification body when it carries no text.
	fcmNoPreview = "New message"
)

// fcmKinds refines HTTPError by FCM's errorCode or, failing that, its status.
// Only UNREGISTERED disables a target: a 404 or SENDER_ID_MISMATCH without it is
// what a node with a wrong project id or service account gets for every device,
// and must not disable them all.
var fcmKinds = map[string]Kind{
	"UNREGISTERED":       Gone,
	"SENDER_ID_MISMATCH": Drop,
	"NOT_FOUND":          Drop,
	"INVALID_ARGUMENT":   Drop,
	"QUOTA_EXCEEDED":     Retry,
	"RESOURCE_EXHAUSTED": Retry,
	"UNAVAILABLE":        Retry,
	"INTERNAL":           Retry,
}

// FCMProvider sends notifications through Firebase Cloud Messaging's HTTP v1 API,
// authorised by a service account's OAuth 2.0 access token. The token is fetched
// once and reused until shortly before it expires (an oauth2.ReuseTokenSource),
// not minted per push. It is safe for concurrent use.
type FCMProvider struct {
	client *http.Client
	tokens oauth2.TokenSource
	url    string // the messages:send URL of the project
}

var _ Provider = (*FCMProvider)(nil)

// NewFCM builds the FCM provider from its settings, reading the service account's
// JSON key from cfg.CredentialsFile. The project is cfg.ProjectID, or else the
// key's project_id.
//
// Access tokens are fetched from the key's token_uri through client too, so the
// client's timeout (not Send's context) bounds a token fetch.
func NewFCM(cfg config.FCM, client *http.Client) (*FCMProvider, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("fcm: endpoint is required")
	}
	if client == nil {
		return nil, errors.New("fcm: no HTTP client")
	}
	key, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("fcm: reading credentials: %w", err)
	}
	jc, err := google.JWTConfigFromJSON(key, fcmScope)
	if err != nil {
		return nil, fmt.Errorf("fcm: parsing credentials %s: %w", cfg.CredentialsFile, err)
	}
	if jc.Email == "" {
		return nil, fmt.Errorf("fcm: credentials %s: no client_email", cfg.CredentialsFile)
	}
	if _, err := jwt.ParseRSAPrivateKeyFromPEM(jc.PrivateKey); err != nil { // fail now, not at the first push
		return nil, fmt.Errorf("fcm: credentials %s: private_key: %w", cfg.CredentialsFile, err)
	}
	project := cfg.ProjectID
	if project == "" {
		var f struct {
			ProjectID string `json:"project_id"`
		}
		_ = json.Unmarshal(key, &f) // it parsed above
		project = f.ProjectID
	}
	if project == "" {
		return nil, fmt.Errorf("fcm: no projectId set and no project_id in %s", cfg.CredentialsFile)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	return &FCMProvider{
		client: client,
		tokens: jc.TokenSource(ctx), // a ReuseTokenSource
		url:    strings.TrimSuffix(cfg.Endpoint, "/") + "/v1/projects/" + url.PathEscape(project) + "/messages:send",
	}, nil
}

// Check refuses a registration token that is empty, longer than 4096 bytes, not
// UTF-8, or holds whitespace or control characters.
func (p *FCMProvider) Check(token string) error {
	switch {
	case token == "":
		return errors.New("fcm: empty registration token")
	case len(token) > fcmMaxToken:
		return fmt.Errorf("fcm: registration token of %d bytes, want at most %d", len(token), fcmMaxToken)
	case !utf8.ValidString(token):
		return errors.New("fcm: registration token is not UTF-8")
	case strings.IndexFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("fcm: registration token holds whitespace or control characters")
	}
	return nil
}

// Send posts one message to the device. FCM's answer maps to an *Error: an
// unregistered token or one of another sender is Gone, a refused request Drop,
// quota, 5xx and a failed token fetch Retry (after Retry-After if given).
func (p *FCMProvider) Send(ctx context.Context, t Target, n Notification) error {
	if err := p.Check(t.Token); err != nil {
		return &Error{Kind: Gone, Reason: err.Error()}
	}
	body, err := json.Marshal(fcmRequest{Message: fcmPayload(t.Token, n)})
	if err != nil {
		return fmt.Errorf("fcm: encoding message: %w", err)
	}
	tok, err := p.tokens.Token()
	if err != nil {
		return &Error{Kind: Retry, Reason: "fcm: fetching access token: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fcm: building request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("fcm: sending: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, fcmMaxErrorBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return fcmError(resp, raw)
}

// fcmError classifies a refusal: HTTPError by status, refined by the body's
// FcmError errorCode or its canonical status.
func fcmError(resp *http.Response, raw []byte) *Error {
	var answer struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
			Details []struct {
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &answer) // an unreadable body leaves the status to decide
	a := answer.Error
	code := a.Status
	for _, d := range a.Details {
		if d.ErrorCode != "" {
			code = d.ErrorCode
			break
		}
	}
	reason := strings.Join(slices.DeleteFunc([]string{code, a.Message}, func(s string) bool { return s == "" }), ": ")
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	e := HTTPError(resp, reason)
	for _, c := range []string{code, a.Status} {
		if k, ok := fcmKinds[c]; ok {
			e.Kind = k
			break
		}
	}
	if e.Kind == Gone && code != "UNREGISTERED" {
		e.Kind = Drop
	}
	return e
}

type fcmRequest struct {
	Message fcmMessage `json:"message"`
}

type fcmMessage struct {
	Token        string            `json:"token"`
	Notification fcmNotification   `json:"notification"`
	Data         map[string]string `json:"data"`
	Android      fcmAndroid        `json:"android"`
	APNs         *fcmAPNs          `json:"apns,omitempty"`
}

type fcmNotification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type fcmAndroid struct {
	CollapseKey string `json:"collapse_key,omitempty"`
	Priority    string `json:"priority"`
}

type fcmAPNs struct {
	Headers map[string]string `json:"headers"`
}

// fcmPayload is the message for one device: a visible notification, every field
// of n as data (FCM's data values are strings), and a collapse key per
// conversation (per device when there is none) so a newer push replaces an older.
func fcmPayload(token string, n Notification) fcmMessage {
	text := n.Preview
	if text == "" {
		text = fcmNoPreview
	}
	data := map[string]string{
		"id":           n.ID,
		"user":         n.User,
		"device":       n.Device,
		"conversation": n.Conversation,
		"messageId":    strconv.FormatInt(n.MessageID, 10),
		"from":         n.From,
		"count":        strconv.Itoa(n.Count),
		"unread":       strconv.FormatInt(n.Unread, 10),
		"ts":           strconv.FormatInt(n.Ts, 10),
	}
	if n.Preview != "" {
		data["preview"] = n.Preview
	}
	collapse := n.Conversation
	if collapse == "" {
		collapse = n.Device
	}
	m := fcmMessage{
		Token:        token,
		Notification: fcmNotification{Title: n.From, Body: text},
		Data:         data,
		Android:      fcmAndroid{Priority: "high"},
	}
	if collapse != "" {
		collapse = apnsCollapseID(collapse) // at most 64 bytes, as APNs allows
		m.Android.CollapseKey = collapse
		m.APNs = &fcmAPNs{Headers: map[string]string{"apns-collapse-id": collapse}}
	}
	return m
}
