package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// messageJSON is a message as in a WebSocket "message" frame, without seq
// (history comes from the conversation, not a sync queue).
type messageJSON struct {
	MessageID    string `json:"messageId"`
	Conversation string `json:"conversation"`
	From         string `json:"from"`
	To           string `json:"to,omitempty"`
	Group        string `json:"group,omitempty"`
	Text         string `json:"text"`
	Ts           int64  `json:"ts"`
	ClientID     string `json:"clientId,omitempty"`
}

type historyAnswer struct {
	Messages []messageJSON `json:"messages"`
	More     bool          `json:"more"`
}

// history serves GET /v1/conversations/{id}/messages?before=&limit=.
func (a *API) history(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	conv := r.PathValue("id")
	members, after, err := a.readable(r.Context(), conv, claims.UserID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	before, limit, err := a.pageParams(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	msgs, more, err := a.store.History(r.Context(), conv, before, after, limit)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := historyAnswer{Messages: make([]messageJSON, len(msgs)), More: more}
	for i, m := range msgs {
		out.Messages[i] = encodeMessage(m, members)
	}
	writeJSON(w, http.StatusOK, out)
}

// readable checks that user may read conv: a member of a direct conversation (its
// members are returned), or of a group (reading starts after its join, returned).
func (a *API) readable(ctx context.Context, conv, user string) (members []string, after int64, err error) {
	kind, members, group, err := convid.Parse(conv)
	switch {
	case err != nil:
		return nil, 0, errorf(CodeBadRequest, "malformed conversation id")
	case kind == convid.Group:
		res, err := a.group(ctx, &parleypb.GroupRequest{Op: parleypb.GroupRequest_MEMBERSHIP, Group: group, By: user})
		if err != nil {
			return nil, 0, err
		}
		return nil, res.JoinedAt, nil
	case user != members[0] && user != members[1]:
		return nil, 0, errorf(CodeForbidden, "not a member of this conversation")
	}
	return members, 0, nil
}

// pageParams reads ?before= (a message id; absent: the newest) and ?limit=
// (default Limits.HistoryDefault, clamped to Limits.HistoryMax).
func (a *API) pageParams(r *http.Request) (before int64, limit int, err error) {
	q := r.URL.Query()
	if s := q.Get("before"); s != "" {
		before, err = strconv.ParseInt(s, 10, 64)
		if err != nil || before < 1 {
			return 0, 0, errorf(CodeBadRequest, "before must be a message id")
		}
	}
	limit = a.limits.HistoryDefault
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if errors.Is(err, strconv.ErrRange) && s[0] != '-' {
			limit, err = a.limits.HistoryMax, nil // too large for an int: clamp like any other
		}
		if err != nil || limit < 1 {
			return 0, 0, errorf(CodeBadRequest, "limit must be a positive integer")
		}
	}
	return before, min(limit, a.limits.HistoryMax), nil
}

// encodeMessage converts a stored message of a direct conversation with the
// given members; a message stored without "to" gets the member that is not
// its sender.
func encodeMessage(m *parleypb.Message, members []string) messageJSON {
	to := m.GetTo()
	if to == "" && m.GetGroup() == "" && len(members) == 2 {
		to = members[0]
		if m.GetFrom() == to {
			to = members[1]
		}
	}
	return messageJSON{
		MessageID:    strconv.FormatInt(m.GetMessageId(), 10),
		Conversation: m.GetConversation(),
		From:         m.GetFrom(),
		To:           to,
		Group:        m.GetGroup(),
		Text:         m.GetText(),
		Ts:           m.GetTs(),
		ClientID:     m.GetClientId(),
	}
}
