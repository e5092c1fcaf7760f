package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Contacts is what contacts and presence settings need of the store;
// *postgres.Store satisfies it.
type Contacts interface {
	AddContact(ctx context.Context, user, contact string, ms int64, limit int) error
	RemoveContact(ctx context.Context, user, contact string) error
	Contacts(ctx context.Context, user string) ([]persistence.Contact, error)
	Visibility(ctx context.Context, user, viewer string) (visibility string, addedViewer bool, err error)
	SetVisibility(ctx context.Context, user, visibility string) error
}

// presenceLookups bounds the live status requests one GET /v1/contacts has in
// flight.
const presenceLookups = 16

// contactID reads {id} of a contacts path: a user id other than the caller's.
func contactID(r *http.Request, claims auth.Claims) (string, error) {
	id := r.PathValue("id")
	switch {
	case !convid.UserID.MatchString(id):
		return "", errorf(parleypb.ErrorReason_NOT_FOUND, "no such user")
	case id == claims.UserID:
		return "", errorf(parleypb.ErrorReason_BAD_REQUEST, "you cannot add yourself as a contact")
	}
	return id, nil
}

// putContact serves PUT /v1/contacts/{id}: idempotent; 404 for a user that does not
// exist, 400 past limits.maxContacts.
func (a *API) putContact(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	id, err := contactID(r, claims)
	if err == nil {
		err = a.contacts.AddContact(r.Context(), claims.UserID, id, time.Now().UnixMilli(), a.limits.MaxContacts)
	}
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		err = errorf(parleypb.ErrorReason_NOT_FOUND, "no such user")
	case errors.Is(err, persistence.ErrLimit):
		err = errorf(parleypb.ErrorReason_BAD_REQUEST, fmt.Sprintf("you have %d contacts, as many as allowed", a.limits.MaxContacts))
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.contactsMoved != nil {
		a.contactsMoved(claims.UserID, id, true)
	}
	w.WriteHeader(http.StatusNoContent)
}

// deleteContact serves DELETE /v1/contacts/{id}: idempotent.
func (a *API) deleteContact(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	id, err := contactID(r, claims)
	if err == nil {
		err = a.contacts.RemoveContact(r.Context(), claims.UserID, id)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.contactsMoved != nil {
		a.contactsMoved(claims.UserID, id, false)
	}
	w.WriteHeader(http.StatusNoContent)
}

type contactsAnswer struct {
	Contacts []userJSON `json:"contacts"`
}

// listContacts serves GET /v1/contacts: the caller's contacts in the order added,
// each with the status and last-seen time the contact's setting lets the caller see
// (hidden: offline, no lastSeen).
func (a *API) listContacts(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	list, err := a.contacts.Contacts(r.Context(), claims.UserID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := contactsAnswer{Contacts: make([]userJSON, len(list))}
	sem := make(chan struct{}, presenceLookups)
	var wg sync.WaitGroup
	for i, c := range list {
		out.Contacts[i] = userJSON{ID: c.ID, DisplayName: c.DisplayName, Status: "offline"}
		if !persistence.Shows(c.Visibility, c.AddedMe) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			status, seen := a.presenceOf(r, persistence.User{ID: c.ID, LastSeen: c.LastSeen})
			out.Contacts[i].Status, out.Contacts[i].LastSeen = status, &seen
		})
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, out)
}

type settingsJSON struct {
	Presence string `json:"presence"`
}

type settingsAnswer struct {
	Settings settingsJSON `json:"settings"`
}

// getSettings serves GET /v1/me/settings.
func (a *API) getSettings(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	v, _, err := a.contacts.Visibility(r.Context(), claims.UserID, claims.UserID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, settingsAnswer{Settings: settingsJSON{Presence: v}})
}

// putSettings serves PUT /v1/me/settings {"presence": "everyone" | "contacts" |
// "nobody"}: who sees the caller's status and last-seen time.
func (a *API) putSettings(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	var body settingsJSON
	if err := decodeBody(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	switch body.Presence {
	case persistence.VisibleToEveryone, persistence.VisibleToContacts, persistence.VisibleToNobody:
	default:
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, `presence must be "everyone", "contacts" or "nobody"`))
		return
	}
	if err := a.contacts.SetVisibility(r.Context(), claims.UserID, body.Presence); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.changed != nil {
		a.changed(claims.UserID)
	}
	writeJSON(w, http.StatusOK, settingsAnswer{Settings: body})
}
