// Command subscriber subscribes to a topic on the HTTP broker (go-micro v5),
// prints "READY <node-id> <address>" once the subscription is in the
// registry, then one JSON line {"header":{...},"body":...} per message (body
// decoded as JSON when it is JSON, else a string). SIGTERM/SIGINT unsubscribe
// and exit.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/registry"

	"micro.local/interop/v5/internal/peer"
)

func main() {
	fs := flag.NewFlagSet("subscriber", flag.ExitOnError)
	cfg := peer.AddFlags(fs)
	topic := fs.String("topic", "example.events", "topic")
	queue := fs.String("queue", "", "queue (group); empty = broadcast")
	_ = fs.Parse(os.Args[1:])
	if err := cfg.Check(); err != nil {
		peer.Fatal("subscriber: %v", err)
	}
	reg, err := cfg.NewRegistry()
	if err != nil {
		peer.Fatal("subscriber: %v", err)
	}
	b := cfg.NewBroker(reg)
	if err := b.Connect(); err != nil {
		peer.Fatal("subscriber: broker connect: %v", err)
	}
	var sopts []broker.SubscribeOption
	if *queue != "" {
		sopts = append(sopts, broker.Queue(*queue))
	}
	sub, err := b.Subscribe(*topic, func(e broker.Event) error {
		m := e.Message()
		var body any = string(m.Body)
		if json.Valid(m.Body) {
			body = json.RawMessage(m.Body)
		}
		peer.Emit(map[string]any{"header": m.Header, "body": body})
		return nil
	}, sopts...)
	if err != nil {
		peer.Fatal("subscriber: subscribe: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	id, err := waitRegistered(reg, *topic, b.Address())
	if err != nil {
		fmt.Fprintf(os.Stderr, "subscriber: %v\n", err)
		_ = sub.Unsubscribe()
		_ = b.Disconnect()
		os.Exit(1)
	}
	peer.Line("READY %s %s", id, b.Address())
	<-ctx.Done()
	if err := sub.Unsubscribe(); err != nil {
		fmt.Fprintf(os.Stderr, "subscriber: unsubscribe: %v\n", err)
	}
	_ = b.Disconnect()
}

// waitRegistered finds this subscription's node in micro.http.broker (at
// most 10 s) and returns its id.
func waitRegistered(reg registry.Registry, topic, addr string) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		services, err := reg.GetService("micro.http.broker")
		if err == nil {
			for _, s := range services {
				for _, n := range s.Nodes {
					if n.Address == addr && n.Metadata["topic"] == topic {
						return n.Id, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("subscription not visible in the registry after 10s (last error: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
