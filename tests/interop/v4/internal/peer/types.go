// Package peer holds what the go-micro v4 interop programs share: message
// types of the helloworld service, command-line configuration and output.
package peer

// Message types of the go-micro service template (`micro new`), as plain Go
// structs encoded with the JSON codec. Zero values are sent (no omitempty), so
// the first ServerStream reply reads {"count":0}.

// CallRequest is the request of Helloworld.Call.
type CallRequest struct {
	Name string `json:"name"`
}

// CallResponse is the reply of Helloworld.Call.
type CallResponse struct {
	Msg string `json:"msg"`
}

// ClientStreamRequest is one client message of Helloworld.ClientStream.
type ClientStreamRequest struct {
	Stroke int64 `json:"stroke"`
}

// ClientStreamResponse is the single reply of Helloworld.ClientStream.
type ClientStreamResponse struct {
	Count int64 `json:"count"`
}

// ServerStreamRequest is the request of Helloworld.ServerStream.
type ServerStreamRequest struct {
	Count int64 `json:"count"`
}

// ServerStreamResponse is one reply of Helloworld.ServerStream.
type ServerStreamResponse struct {
	Count int64 `json:"count"`
}

// BidiStreamRequest is one client message of Helloworld.BidiStream.
type BidiStreamRequest struct {
	Stroke int64 `json:"stroke"`
}

// BidiStreamResponse is one reply of Helloworld.BidiStream.
type BidiStreamResponse struct {
	Stroke int64 `json:"stroke"`
}

// FailRequest asks Helloworld.Fail for an error with this code and detail.
type FailRequest struct {
	Code   int32  `json:"code"`
	Detail string `json:"detail"`
}

// FailResponse is never sent: Helloworld.Fail always returns an error.
type FailResponse struct{}

// MetaRequest is the (empty) request of Helloworld.Meta.
type MetaRequest struct{}

// MetaResponse carries the metadata the handler found in its context.
type MetaResponse struct {
	Metadata map[string]string `json:"metadata"`
}

// Event is the message published on the events topic.
type Event struct {
	ID        string `json:"id"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}

// Payload carries the JSON shapes that must cross the Go boundary unchanged:
// floats of every kind, 64-bit integers, []byte (base64), nil slices and maps
// (null), nested messages. Helloworld.Echo returns it as it came.
type Payload struct {
	F64    float64            `json:"f64"`
	F64s   []float64          `json:"f64s"`
	F32    float32            `json:"f32"`
	I64    int64              `json:"i64"`
	U64    uint64             `json:"u64"`
	Text   string             `json:"text"`
	Bytes  []byte             `json:"bytes"`
	List   []string           `json:"list"`
	Map    map[string]float64 `json:"map"`
	Inner  *Inner             `json:"inner"`
	Inners []Inner            `json:"inners"`
}

// Inner is a message nested in Payload.
type Inner struct {
	Name   string            `json:"name"`
	Values []float64         `json:"values"`
	Tags   map[string]string `json:"tags"`
}
