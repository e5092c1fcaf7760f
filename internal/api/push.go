package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// PushStore is what push registrations and mute settings need of the store;
// *postgres.Store satisfies it.
type PushStore interface {
	SetPushTarget(ctx context.Context, user, device, provider, token string, until int64, create bool) error
	ClearPushTarget(ctx context.Context, user, device string) error
	SetMuted(ctx context.Context, user, conv string, muted bool) error
	Muted(ctx context.Context, user, conv string) (bool, error)
}

// maxPushToken bounds a registration's token (a Web Push subscription is the
// longest, a few hundred bytes).
const maxPushToken = 4096

type pushRequest struct {
	Provider string `json:"provider"`
	Token    string `json:"token"`
}

// pushDevice reads {device} of a push path: a device id. Only its own user may
// register or remove a device's target, and the store knows only the caller's
// devices, so another user's device is not_found.
func pushDevice(r *http.Request) (string, error) {
	d := r.PathValue("device")
	if !auth.DevicePattern.MatchString(d) {
		return "", errorf(parleypb.ErrorReason_NOT_FOUND, "no such device")
	}
	return d, nil
}

// putPush serves PUT /v1/devices/{deviceId}/push: the device's push target, which
// replaces the one it had, for as long as the caller's session lasts (a later
// session of the device extends it; its logout ends it).
func (a *API) putPush(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	device, err := pushDevice(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req pushRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	switch {
	case req.Provider == "" || req.Token == "":
		err = errorf(parleypb.ErrorReason_BAD_REQUEST, "provider and token are required")
	case len(req.Token) > maxPushToken:
		err = errorf(parleypb.ErrorReason_BAD_REQUEST, "token is too long")
	case a.pushCheck == nil:
		err = errorf(parleypb.ErrorReason_BAD_REQUEST, "this server sends no pushes")
	default:
		if cerr := a.pushCheck(req.Provider, req.Token); cerr != nil {
			err = errorf(parleypb.ErrorReason_BAD_REQUEST, cerr.Error())
		}
	}
	if err == nil {
		err = a.push.SetPushTarget(r.Context(), claims.UserID, device, req.Provider, req.Token, claims.Expires.UnixMilli(),
			device == claims.DeviceID)
		if errors.Is(err, persistence.ErrNotFound) {
			err = errorf(parleypb.ErrorReason_NOT_FOUND, "no such device")
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deletePush serves DELETE /v1/devices/{deviceId}/push: idempotent.
func (a *API) deletePush(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	device, err := pushDevice(r)
	if err == nil {
		err = a.push.ClearPushTarget(r.Context(), claims.UserID, device)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type conversationSettings struct {
	Muted *bool `json:"muted"`
}

// getConversationSettings serves GET /v1/conversations/{id}/settings (members only).
func (a *API) getConversationSettings(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	conv := r.PathValue("id")
	if _, err := a.readable(r.Context(), conv, claims.UserID); err != nil {
		a.fail(w, r, err)
		return
	}
	muted, err := a.push.Muted(r.Context(), claims.UserID, conv)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conversationSettings{Muted: &muted})
}

// putConversationSettings serves PUT /v1/conversations/{id}/settings
// {"muted":bool} (members only): a muted conversation makes the caller no push.
func (a *API) putConversationSettings(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	conv := r.PathValue("id")
	var req conversationSettings
	err := decodeBody(w, r, &req)
	if err == nil && req.Muted == nil {
		err = errorf(parleypb.ErrorReason_BAD_REQUEST, "muted is required")
	}
	if err == nil {
		_, err = a.readable(r.Context(), conv, claims.UserID)
	}
	if err == nil {
		err = a.push.SetMuted(r.Context(), claims.UserID, conv, *req.Muted)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}
