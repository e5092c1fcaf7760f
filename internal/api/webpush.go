package api

import "net/http"

// webPushInfo is the answer of GET /v1/push/webpush.
type webPushInfo struct {
	Available bool   `json:"available"`
	PublicKey string `json:"publicKey,omitempty"`
}

// RegisterWebPush adds GET /v1/push/webpush (an addition to the contract), which
// tells a browser whether this node sends Web Push and with which VAPID public
// key (push.webpush.publicKey; "" when the provider is off) it must subscribe.
// The key is public by design, so the call needs no token; it is limited per
// source address like every REST call, and always answers 200 so that a browser
// without push logs no failed request.
func (a *API) RegisterWebPush(mux *http.ServeMux, publicKey string) {
	info := webPushInfo{Available: publicKey != "", PublicKey: publicKey}
	a.route(mux, "/v1/push/webpush", map[string]http.HandlerFunc{
		http.MethodGet: func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, info) },
	})
}
