package wire

import (
	"testing"

	pb "github.com/parleychat/parley/proto/parleypb"
)

var (
	benchSendJSON = []byte(`{"type":"send","id":"0b6c7c1e-5c3a-4f7e-9d4e-2f1a9c8b7d6e","to":"bob",` +
		`"text":"Hello Bob, are we still on for lunch tomorrow at noon?"}`)
	benchMessage = &pb.ServerFrame{Body: &pb.ServerFrame_Message{Message: &pb.Message{
		Seq: 1234567, MessageId: 7123456789012345678, Conversation: "dm:alice:bob", From: "alice", To: "bob",
		Text: "Hello Bob, are we still on for lunch tomorrow at noon?", Ts: 1700000000000,
		ClientId: "0b6c7c1e-5c3a-4f7e-9d4e-2f1a9c8b7d6e"}}}
)

func BenchmarkDecodeSendJSON(b *testing.B) {
	benchDecode(b, JSON, benchSendJSON)
}

func BenchmarkDecodeSendProto(b *testing.B) {
	f, err := DecodeClient(JSON, benchSendJSON)
	if err != nil {
		b.Fatal(err)
	}
	data, err := EncodeClient(Proto, f)
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, Proto, data)
}

func BenchmarkEncodeMessageJSON(b *testing.B) {
	benchEncode(b, JSON)
}

func BenchmarkEncodeMessageProto(b *testing.B) {
	benchEncode(b, Proto)
}

func benchDecode(b *testing.B, enc Encoding, data []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeClient(enc, data); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEncode(b *testing.B, enc Encoding) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeServer(enc, benchMessage); err != nil {
			b.Fatal(err)
		}
	}
}

// The acknowledgements as Parley's clients encode them take the fast path.
func BenchmarkDecodeReceivedJSON(b *testing.B) {
	benchDecode(b, JSON, encodedAck(b, &pb.ClientFrame{Body: &pb.ClientFrame_Received{Received: &pb.Received{UpTo: 1234567}}}))
}

// The same frame through encoding/json, for the comparison.
func BenchmarkDecodeReceivedJSONFull(b *testing.B) {
	data := encodedAck(b, &pb.ClientFrame{Body: &pb.ClientFrame_Received{Received: &pb.Received{UpTo: 1234567}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, fe := decodeFullJSON(data); fe != nil {
			b.Fatal(fe)
		}
	}
}

func encodedAck(b *testing.B, f *pb.ClientFrame) []byte {
	data, err := EncodeClient(JSON, f)
	if err != nil || decodeAckJSON(data) == nil {
		b.Fatalf("%s does not take the fast path (%v)", data, err)
	}
	return data
}
