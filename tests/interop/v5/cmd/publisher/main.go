// Command publisher publishes events {"id","timestamp","message"} through the
// HTTP broker with go-micro v5: by default via the client (micro.NewEvent,
// i.e. client.Publish), with --mode broker via a raw broker.Publish.
// It prints one JSON line per publish: {"published":i,"id":...} or an error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"go-micro.dev/v5"
	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/metadata"

	"micro.local/interop/v5/internal/peer"
)

func main() {
	fs := flag.NewFlagSet("publisher", flag.ExitOnError)
	cfg := peer.AddFlags(fs)
	topic := fs.String("topic", "example.events", "topic")
	count := fs.Int("count", 1, "number of events")
	mode := fs.String("mode", "client", "client (micro.NewEvent / client.Publish) or broker (raw broker.Publish)")
	message := fs.String("message", "hello", "message text (the event index is appended)")
	interval := fs.Duration("interval", 0, "pause between publishes")
	linger := fs.Duration("linger", time.Second, "wait before disconnecting (the HTTP broker delivers asynchronously)")
	md := peer.Pairs{}
	fs.Var(md, "metadata", "metadata (client mode) or header (broker mode) key=value (repeatable)")
	_ = fs.Parse(os.Args[1:])
	if err := cfg.Check(); err != nil {
		peer.Fatal("publisher: %v", err)
	}
	if *mode != "client" && *mode != "broker" {
		peer.Fatal("publisher: --mode must be client or broker")
	}

	reg, err := cfg.NewRegistry()
	if err != nil {
		peer.Fatal("publisher: %v", err)
	}
	b := cfg.NewBroker(reg)
	svc := micro.New("helloworld-publisher", cfg.ServiceOptions(reg, b)...)
	if *mode == "broker" {
		if err := b.Connect(); err != nil {
			peer.Fatal("publisher: broker connect: %v", err)
		}
	}
	ev := micro.NewEvent(*topic, svc.Client())
	ctx := context.Background()
	if len(md) > 0 {
		ctx = metadata.NewContext(ctx, metadata.Metadata(md))
	}

	failed := false
	for i := 0; i < *count; i++ {
		if i > 0 && *interval > 0 {
			time.Sleep(*interval)
		}
		e := &peer.Event{
			ID:        fmt.Sprintf("event-%d-%d", os.Getpid(), i),
			Timestamp: time.Now().Unix(),
			Message:   fmt.Sprintf("%s %d", *message, i),
		}
		if *mode == "client" {
			err = ev.Publish(ctx, e)
		} else {
			err = rawPublish(b, *topic, md, e)
		}
		if err != nil {
			failed = true
			peer.EmitError(err)
			continue
		}
		peer.Emit(map[string]any{"published": i, "id": e.ID})
	}
	time.Sleep(*linger)
	_ = b.Disconnect()
	if failed {
		os.Exit(1)
	}
}

// rawPublish sends the JSON event with a Content-Type header plus the given
// headers, without any of the client's headers (Micro-Id, Micro-Topic are
// added by the broker itself only for Micro-Topic).
func rawPublish(b broker.Broker, topic string, header map[string]string, e *peer.Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return b.Publish(topic, &broker.Message{Header: h, Body: body})
}
