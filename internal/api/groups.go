package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// Groups runs a group operation on the group's grain (the node supplies it).
type Groups func(ctx context.Context, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error)

type groupJSON struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Members []string `json:"members"`
}

func groupOf(r *parleypb.GroupResponse) map[string]groupJSON {
	members := r.Members
	if members == nil {
		members = []string{}
	}
	return map[string]groupJSON{"group": {ID: r.Group, Name: r.Name, Owner: r.Owner, Members: members}}
}

// group runs req and turns a grain error into the client error of its code.
func (a *API) group(ctx context.Context, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error) {
	if a.groups == nil {
		return nil, errorf(parleypb.ErrorReason_NOT_FOUND, "groups are not served")
	}
	return a.groups(ctx, req) // its errors are grain errors: classify maps them
}

// createGroup serves POST /v1/groups {"name","members":[ids]}: the caller is owner
// and member.
func (a *API) createGroup(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	var body struct {
		Name    string   `json:"name"`
		Members []string `json:"members"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	for _, m := range body.Members {
		if !convid.UserID.MatchString(m) {
			a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "members must be user ids"))
			return
		}
	}
	name := strings.TrimSpace(body.Name)
	if err := checkName("name", name); err != nil {
		a.fail(w, r, err)
		return
	}
	res, err := a.group(r.Context(), &parleypb.GroupRequest{Op: parleypb.GroupRequest_CREATE, Group: convid.NewGroupID(),
		By: claims.UserID, Name: name, Members: body.Members})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, groupOf(res))
}

// getGroup serves GET /v1/groups/{id} (members only).
func (a *API) getGroup(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	a.groupCall(w, r, &parleypb.GroupRequest{Op: parleypb.GroupRequest_GET, By: claims.UserID}, http.StatusOK)
}

// addMember serves POST /v1/groups/{id}/members {"user"} (owner only).
func (a *API) addMember(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	var body struct {
		User string `json:"user"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	if !convid.UserID.MatchString(body.User) {
		a.fail(w, r, errorf(parleypb.ErrorReason_BAD_REQUEST, "user must be a user id"))
		return
	}
	a.groupCall(w, r, &parleypb.GroupRequest{Op: parleypb.GroupRequest_ADD_MEMBER, By: claims.UserID, User: body.User},
		http.StatusNoContent)
}

// removeMember serves DELETE /v1/groups/{id}/members/{user} (owner, or the user
// leaving).
func (a *API) removeMember(w http.ResponseWriter, r *http.Request, claims auth.Claims) {
	a.groupCall(w, r, &parleypb.GroupRequest{Op: parleypb.GroupRequest_REMOVE_MEMBER, By: claims.UserID,
		User: r.PathValue("user")}, http.StatusNoContent)
}

func (a *API) groupCall(w http.ResponseWriter, r *http.Request, req *parleypb.GroupRequest, status int) {
	req.Group = r.PathValue("id")
	if !convid.ValidGroupID(req.Group) {
		a.fail(w, r, errorf(parleypb.ErrorReason_NOT_FOUND, "no such group"))
		return
	}
	res, err := a.group(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, groupOf(res))
}
