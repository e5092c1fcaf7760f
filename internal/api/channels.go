package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Channels runs a channel operation on the channel's grain (the node supplies it).
type Channels func(ctx context.Context, req *parleypb.ChannelRequest) (*parleypb.ChannelResponse, error)

// ChannelStore is what the channel routes read from the store directly: a member's
// role, a user's channels and how many members read up to a message.
type ChannelStore interface {
	ChannelRole(ctx context.Context, conv, user string) (role int, ok bool, err error)
	ChannelsOf(ctx context.Context, user string, limit, unreadMax int) ([]*parleypb.ChannelState, error)
	ChannelReads(ctx context.Context, conv string, upTo int64) (read, members int64, err error)
	HistoryAfter(ctx context.Context, conv string, after, before int64, limit int) ([]*parleypb.Message, bool, error)
}

type channelJSON struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Owner       string   `json:"owner"`
	Mode        string   `json:"mode"`
	Public      bool     `json:"public"`
	Admins      []string `json:"admins"`
	MemberCount int64    `json:"memberCount"`
}

func channelOf(r *parleypb.ChannelResponse) map[string]channelJSON {
	admins := r.Admins
	if admins == nil {
		admins = []string{}
	}
	return map[string]channelJSON{"channel": {ID: r.Channel, Name: r.Name, Owner: r.Owner, Mode: r.Mode,
		Public: r.Public, Admins: admins, MemberCount: r.MemberCount}}
}

func (a *API) registerChannels(mux *http.ServeMux) {
	if a.channels == nil || a.channelStore == nil {
		return
	}
	a.route(mux, "/v1/channels", map[string]http.HandlerFunc{
		http.MethodPost: a.authed(a.createChannel),
		http.MethodGet:  a.authed(a.listChannels),
	})
	a.route(mux, "/v1/channels/{id}", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.getChannel),
	})
	a.route(mux, "/v1/channels/{id}/members", map[string]http.HandlerFunc{
		http.MethodPost: a.authed(a.addChannelMembers),
	})
	a.route(mux, "/v1/channels/{id}/members/{user}", map[string]http.HandlerFunc{
		http.MethodDelete: a.authed(a.removeChannelMember),
	})
	a.route(mux, "/v1/channels/{id}/admins/{user}", map[string]http.HandlerFunc{
		http.MethodPut:    a.authed(a.setChannelAdmin(true)),
		http.MethodDelete: a.authed(a.setChannelAdmin(false)),
	})
	a.route(mux, "/v1/channels/{id}/messages", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.channelHistory),
	})
	a.route(mux, "/v1/channels/{id}/reads", map[string]http.HandlerFunc{
		http.MethodGet: a.authed(a.channelReads),
	})
}

// createChannel serves POST /v1/channels {"name","mode","public"}: the caller is
// owner and member.
func (a *API) createChannel(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	var body struct {
		Name   string `json:"name"`
		Mode   string `json:"mode"`
		Public bool   `json:"public"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	name := strings.TrimSpace(body.Name)
	if err := checkName("name", name); err != nil {
		a.fail(w, r, err)
		return
	}
	if body.Mode != "" && body.Mode != persistence.ChannelBroadcast && body.Mode != persistence.ChannelOpen {
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "mode must be broadcast or open"))
		return
	}
	res, err := a.channels(r.Context(), &parleypb.ChannelRequest{Op: parleypb.ChannelRequest_CREATE,
		Channel: convid.NewGroupID(), By: claims.UserID, Name: name, Mode: body.Mode, Public: body.Public})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, channelOf(res))
}

// listChannels serves GET /v1/channels: the caller's channels, as the channels
// frame gives them.
func (a *API) listChannels(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	states, err := a.channelStore.ChannelsOf(r.Context(), claims.UserID, a.limits.ChannelsPerUser, a.limits.ChannelUnreadMax)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Channels []json.RawMessage `json:"channels"`
	}{Channels: make([]json.RawMessage, len(states))}
	for i, s := range states {
		out.Channels[i] = wire.AppendChannelState(nil, s)
	}
	writeJSON(w, http.StatusOK, out)
}

// getChannel serves GET /v1/channels/{id} (members; anyone when public).
func (a *API) getChannel(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	a.channelCall(w, r, &parleypb.ChannelRequest{Op: parleypb.ChannelRequest_GET, By: claims.UserID}, http.StatusOK)
}

// addChannelMembers serves POST /v1/channels/{id}/members {"user"} or {"users"}.
func (a *API) addChannelMembers(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	var body struct {
		User  string   `json:"user"`
		Users []string `json:"users"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	users := body.Users
	if body.User != "" {
		users = append(users, body.User)
	}
	if len(users) == 0 {
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, `"user" or "users" is required`))
		return
	}
	if max := a.limits.ChannelAddBatch; max > 0 && len(users) > max {
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "at most "+strconv.Itoa(max)+" users per call"))
		return
	}
	for _, u := range users {
		if !convid.UserID.MatchString(u) {
			a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "users must be user ids"))
			return
		}
	}
	a.channelCall(w, r, &parleypb.ChannelRequest{Op: parleypb.ChannelRequest_ADD_MEMBERS, By: claims.UserID, Users: users},
		http.StatusNoContent)
}

// removeChannelMember serves DELETE /v1/channels/{id}/members/{user}.
func (a *API) removeChannelMember(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	a.channelCall(w, r, &parleypb.ChannelRequest{Op: parleypb.ChannelRequest_REMOVE_MEMBER, By: claims.UserID,
		User: r.PathValue("user")}, http.StatusNoContent)
}

// setChannelAdmin serves PUT and DELETE /v1/channels/{id}/admins/{user} (owner only).
func (a *API) setChannelAdmin(admin bool) authedHandler {
	return func(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
		a.channelCall(w, r, &parleypb.ChannelRequest{Op: parleypb.ChannelRequest_SET_ADMIN, By: claims.UserID,
			User: r.PathValue("user"), Admin: admin}, http.StatusNoContent)
	}
}

func (a *API) channelCall(w http.ResponseWriter, r *http.Request, req *parleypb.ChannelRequest, status int) {
	req.Channel = r.PathValue("id")
	if !convid.ValidGroupID(req.Channel) {
		a.fail(w, r, errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel"))
		return
	}
	if req.User != "" && !convid.UserID.MatchString(req.User) {
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "user must be a user id"))
		return
	}
	res, err := a.channels(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, channelOf(res))
}

// channelHistory serves GET /v1/channels/{id}/messages, as the conversation's
// history route does.
func (a *API) channelHistory(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	if !convid.ValidGroupID(r.PathValue("id")) {
		a.fail(w, r, errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel"))
		return
	}
	a.historyOf(w, r, claims, convid.ChannelID(r.PathValue("id")))
}

// channelReads serves GET /v1/channels/{id}/reads?upTo= (owner and admins): how
// many members read up to a message (default the last), never who.
func (a *API) channelReads(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	id := r.PathValue("id")
	if !convid.ValidGroupID(id) {
		a.fail(w, r, errorf(parleypb.ErrorReason_NOT_FOUND, "no such channel"))
		return
	}
	var upTo int64
	if s := r.URL.Query().Get("upTo"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 {
			a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "upTo must be a message id"))
			return
		}
		upTo = v
	}
	conv := convid.ChannelID(id)
	role, ok, err := a.channelStore.ChannelRole(r.Context(), conv, claims.UserID)
	switch {
	case err != nil:
		a.fail(w, r, err)
		return
	case !ok || role < persistence.ChannelAdmin:
		a.fail(w, r, errorf(parleypb.ErrorReason_FORBIDDEN, "only the owner and admins see read counts"))
		return
	}
	read, members, err := a.channelStore.ChannelReads(r.Context(), conv, upTo)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"readCount": read, "memberCount": members})
}

// channelMember answers forbidden unless user is a member of the channel conv.
func (a *API) channelMember(ctx context.Context, conv, user string) error {
	if a.channelStore == nil {
		return errorf(parleypb.ErrorReason_NOT_FOUND, "channels are not served")
	}
	_, ok, err := a.channelStore.ChannelRole(ctx, conv, user)
	switch {
	case err != nil:
		return err
	case !ok:
		return errorf(parleypb.ErrorReason_FORBIDDEN, "not a member of this channel")
	}
	return nil
}
