package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/textcheck"
	"github.com/parleychat/parley/proto/parleypb"
)

// fuzzAPI serves an API on an in-memory store, with a group "grain" that checks
// what the real one would be given (a name that passed the REST checks) and no
// throttling. It returns the mux and a token of the existing user "alice".
func fuzzAPI(f *testing.F) (*http.ServeMux, string) {
	f.Helper()
	secret, err := auth.NewSecret()
	if err != nil {
		f.Fatal(err)
	}
	signer, err := auth.NewSigner(secret, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	store := newMemStore()
	groups := func(_ context.Context, req *parleypb.GroupRequest) (*parleypb.GroupResponse, error) {
		if err := textcheck.Name(req.Name); err != nil || !utf8.ValidString(req.Name) {
			panic("a refused name reached the group grain: " + req.Name)
		}
		if req.Name == "" {
			return nil, parleypb.Errorf(parleypb.ErrorReason_BAD_REQUEST, "name must be 1 to 64 characters")
		}
		return &parleypb.GroupResponse{Group: req.Group, Name: req.Name, Owner: req.By, Members: req.Members}, nil
	}
	mux := http.NewServeMux()
	api.New(api.Options{Store: store, Signer: signer, BcryptCost: 4, Groups: groups,
		Limits: config.Limits{HistoryDefault: 50, HistoryMax: 100}}).Register(mux)
	token, err := signer.Issue("alice", "d1")
	if err != nil {
		f.Fatal(err)
	}
	return mux, token
}

// checkAnswer fails on a 5xx answer, and on an error answer that is not the
// protocol's JSON error body.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("body %q: %d %s", body, w.Code, w.Body.Bytes())
	}
	if w.Code >= 400 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("body %q: %d answer is no error body: %s", body, w.Code, w.Body.Bytes())
		}
	}
}

func post(mux *http.ServeMux, path, token string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// FuzzCreateUserBody: no body of POST /v1/users gets a 5xx or a panic, and an
// account it creates has a display name textcheck accepts.
func FuzzCreateUserBody(f *testing.F) {
	for _, s := range []string{
		`{"username":"bob","password":"correct horse","displayName":"Bob"}`,
		`{"username":"bob","password":"correct horse","displayName":"admin\u202e\u200b"}`,
		`{"username":"a","password":"` + string(bytes.Repeat([]byte("p"), 72)) + `"}`,
		`{"username":5}`, `[]`, `null`, ``, `{"displayName":"\ud800"}`, "{\"displayName\":\"a\xffb\"}",
	} {
		f.Add([]byte(s))
	}
	mux, _ := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(mux, "/v1/users", "", body)
		checkAnswer(t, w, body)
		if w.Code == http.StatusCreated {
			var ok struct {
				User struct{ ID, DisplayName string } `json:"user"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &ok); err != nil {
				t.Fatalf("body %q: created, but the answer is %s", body, w.Body.Bytes())
			}
			if err := textcheck.Name(ok.User.DisplayName); err != nil {
				t.Fatalf("body %q: created with display name %q: %v", body, ok.User.DisplayName, err)
			}
		}
	})
}

// FuzzCreateGroupBody: no body of POST /v1/groups gets a 5xx or a panic, and no
// name that textcheck refuses reaches the group grain.
func FuzzCreateGroupBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"team","members":["bob","carol"]}`,
		`{"name":"a\u0000\n<script>","members":[]}`,
		`{"name":" \u2066x\u2069 "}`,
		`{"name":"ok","members":["Bad!"]}`,
		`{"name":"ok","members":"bob"}`, `{"members":[1,2]}`, `{}`, `[`, "{\"name\":\"\xed\xa0\x80\"}",
	} {
		f.Add([]byte(s))
	}
	mux, token := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAnswer(t, post(mux, "/v1/groups", token, body), body)
	})
}

// FuzzCreateSessionBody: no body of POST /v1/sessions gets a 5xx or a panic.
func FuzzCreateSessionBody(f *testing.F) {
	for _, s := range []string{
		`{"username":"alice","password":"correct horse"}`,
		`{"username":"alice","password":"x","device":"phone-1"}`,
		`{"username":"alice","password":"x","device":"my phone\u0000"}`,
		`{"username":"` + string(bytes.Repeat([]byte("a"), 40)) + `"}`, `{"password":null}`, `7`,
	} {
		f.Add([]byte(s))
	}
	mux, _ := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkAnswer(t, post(mux, "/v1/sessions", "", body), body)
	})
}
