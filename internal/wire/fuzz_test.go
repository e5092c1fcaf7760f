package wire

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeClient feeds arbitrary payloads to both decoders. They must never
// panic, must fail only with a bad_request FrameError, and any frame accepted
// must survive encoding and decoding in both encodings unchanged.
func FuzzDecodeClient(f *testing.F) {
	for _, tc := range badJSON {
		f.Add([]byte(tc.in))
	}
	for _, s := range []string{
		`{"type":"send","id":"c1","to":"bob","text":"hi"}`,
		`{"type":"sync"}`, `{"type":"sync","after":"0","limit":5}`, `{"type":"received","upTo":42}`,
		`{"type":"read","conversation":"dm:a:b","upTo":"9"}`, `{"type":"ping","x":[{}]}`,
		`{"type":"send","id":"\u00e9\ud800","group":"g","text":"\u2028\"\\"}`,
	} {
		f.Add([]byte(s))
	}
	for _, fr := range validClientFrames() {
		for _, enc := range encodings {
			b, err := EncodeClient(enc, fr)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, enc := range encodings {
			fr, err := DecodeClient(enc, data)
			if err != nil {
				var fe *FrameError
				if !errors.As(err, &fe) || fe.Code != CodeBadRequest || fe.Message == "" {
					t.Fatalf("%s: bad error %#v", enc, err)
				}
				continue
			}
			if TypeOf(fr) == "" {
				t.Fatalf("%s: accepted an empty frame", enc)
			}
			for _, out := range encodings {
				b, err := EncodeClient(out, fr)
				if err != nil {
					t.Fatalf("%s->%s: encode %v: %v", enc, out, fr, err)
				}
				back, err := DecodeClient(out, b)
				if err != nil {
					t.Fatalf("%s->%s: decode %q: %v", enc, out, b, err)
				}
				if !proto.Equal(fr, back) {
					t.Fatalf("%s->%s: %v became %v", enc, out, fr, back)
				}
			}
		}
	})
}
