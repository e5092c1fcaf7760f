package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/textcheck"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Password and display-name bounds.
const (
	minPasswordBytes   = 8
	maxPasswordBytes   = 72 // what bcrypt hashes
	maxDisplayNameRune = 64
)

// errBadLogin is the one answer to a wrong username or password.
var errBadLogin = errorf(parleypb.ErrorReason_UNAUTHORIZED, "wrong username or password")

type userJSON struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Status      string `json:"status,omitempty"`
	LastSeen    *int64 `json:"lastSeen,omitempty"`
}

type userAnswer struct {
	User userJSON `json:"user"`
}

type createUserRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName"`
}

// createUser serves POST /v1/users.
func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var req createUserRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	name, err := req.validate()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.throttles.takeRegister(r); err != nil {
		a.fail(w, r, err)
		return
	}
	hash, err := a.hasher.Hash(r.Context(), req.Password)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	err = a.store.CreateUser(r.Context(), persistence.User{ID: req.Username, DisplayName: name, PasswordHash: hash})
	if errors.Is(err, persistence.ErrConflict) {
		err = errorf(parleypb.ErrorReason_CONFLICT, "username "+req.Username+" is taken")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, userAnswer{User: userJSON{ID: req.Username, DisplayName: name}})
}

// validate checks the request and returns the display name to store.
func (req *createUserRequest) validate() (string, error) {
	if !convid.UserID.MatchString(req.Username) {
		return "", errorf(parleypb.ErrorReason_BAD_REQUEST, "username must match "+convid.UserID.String())
	}
	if n := len(req.Password); n < minPasswordBytes || n > maxPasswordBytes {
		return "", errorf(parleypb.ErrorReason_BAD_REQUEST, fmt.Sprintf("password must be %d to %d bytes", minPasswordBytes, maxPasswordBytes))
	}
	name := strings.TrimSpace(req.DisplayName)
	if name == "" {
		return req.Username, nil
	}
	if utf8.RuneCountInString(name) > maxDisplayNameRune {
		return "", errorf(parleypb.ErrorReason_BAD_REQUEST, fmt.Sprintf("displayName must be at most %d characters", maxDisplayNameRune))
	}
	if err := checkName("displayName", name); err != nil {
		return "", err
	}
	return name, nil
}

type sessionRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Device   string `json:"device"`
}

type sessionAnswer struct {
	Token    string `json:"token"`
	UserID   string `json:"userId"`
	DeviceID string `json:"deviceId"`
}

// createSession serves POST /v1/sessions.
func (a *API) createSession(w http.ResponseWriter, r *http.Request) {
	var req sessionRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Device != "" && !auth.DevicePattern.MatchString(req.Device) {
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "device must match "+auth.DevicePattern.String()))
		return
	}
	if err := a.login(r, req.Username, req.Password); err != nil {
		a.fail(w, r, err)
		return
	}
	device := req.Device
	if device == "" {
		device = newDeviceID()
	}
	until := time.Now().Add(a.signer.TTL()).UnixMilli() // the token's expiry, or a moment after
	if err := a.store.AddDevice(r.Context(), req.Username, device, until); err != nil {
		a.fail(w, r, err)
		return
	}
	token, err := a.sessions.Issue(r.Context(), req.Username, device)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, sessionAnswer{Token: token, UserID: req.Username, DeviceID: device})
}

// deleteSession serves DELETE /v1/sessions/current: logout. Every token of the
// caller's device stops being valid (see auth.Sessions for how soon on other
// nodes) and its live connections close; the device's cursor stays.
func (a *API) deleteSession(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	if err := a.sessions.Revoke(r.Context(), claims.UserID, claims.DeviceID); err != nil {
		a.fail(w, r, err)
		return
	}
	if a.loggedOut != nil {
		a.loggedOut(claims.UserID, claims.DeviceID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// login checks a username and password: errBadLogin if either is wrong, a
// rateLimited error while the address or the account has had too many failed
// logins (a login that succeeds, or fails for the server's reasons, does not
// count).
func (a *API) login(r *http.Request, username, password string) error {
	if !convid.UserID.MatchString(username) {
		return errBadLogin // no such account can exist: nothing to guess, no hash spent
	}
	refund, err := a.throttles.takeLogin(r, username)
	if err != nil {
		return err
	}
	ok, err := a.checkLogin(r, username, password)
	switch {
	case err != nil: // the server's failure, not a guess
		refund()
		return err
	case !ok:
		return errBadLogin
	}
	refund()
	return nil
}

// checkLogin reports whether password is username's.
func (a *API) checkLogin(r *http.Request, username, password string) (bool, error) {
	u, err := a.store.User(r.Context(), username)
	if errors.Is(err, persistence.ErrNotFound) {
		// Spend the time of a real check, so that timing does not tell
		// unknown users from wrong passwords.
		return false, a.hasher.CheckNone(r.Context(), password)
	}
	if err != nil {
		return false, err
	}
	return a.hasher.Check(r.Context(), u.PasswordHash, password)
}

// checkName refuses a name shown to other users that [textcheck.Name] refuses,
// saying which character (by code point) and in which field.
func checkName(field, name string) error {
	if err := textcheck.Name(name); err != nil {
		return errorf(parleypb.ErrorReason_BAD_REQUEST, field+" is refused: "+strings.TrimPrefix(err.Error(), "textcheck: "))
	}
	return nil
}

// newDeviceID returns "d" and 16 random hex digits.
func newDeviceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "d" + hex.EncodeToString(b[:])
}

// getUser serves GET /v1/users/{id}.
func (a *API) getUser(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	id := r.PathValue("id")
	notFound := errorf(parleypb.ErrorReason_NOT_FOUND, "no such user")
	if !convid.UserID.MatchString(id) {
		a.fail(w, r, notFound)
		return
	}
	u, err := a.store.User(r.Context(), id)
	if errors.Is(err, persistence.ErrNotFound) {
		err = notFound
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.contacts != nil && id != claims.UserID {
		v, added, err := a.contacts.Visibility(r.Context(), id, claims.UserID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !persistence.Shows(v, added) { // hidden: offline, no last-seen time
			writeJSON(w, http.StatusOK, userAnswer{User: userJSON{ID: u.ID, DisplayName: u.DisplayName, Status: "offline"}})
			return
		}
	}
	status, lastSeen := a.presenceOf(r, u)
	writeJSON(w, http.StatusOK, userAnswer{User: userJSON{
		ID: u.ID, DisplayName: u.DisplayName, Status: status, LastSeen: &lastSeen,
	}})
}

// presenceOf returns the live status of u and the later of the live and
// stored last-seen times; "offline" and the stored time if that is unknown.
func (a *API) presenceOf(r *http.Request, u persistence.User) (string, int64) {
	if a.presence == nil {
		return "offline", u.LastSeen
	}
	status, lastSeen, err := a.presence(r.Context(), u.ID)
	if err != nil || status == "" {
		if err != nil {
			a.log.WarnContext(r.Context(), "presence unknown", "user_id", u.ID, "err", err)
		}
		return "offline", u.LastSeen
	}
	return status, max(lastSeen, u.LastSeen)
}
