package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/registry"

	"micro.local/interop/v5/internal/peer"
)

// runPublish publishes events from --concurrency goroutines for --seconds
// (or --max_events), once --subscribers subscriptions of the topic are in the
// registry. It prints {"published","errors","start_ns","end_ns"} and then
// keeps the broker connected (go-micro delivers asynchronously, after Publish
// returned) until SIGTERM/SIGINT.
func runPublish(o *opts) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reg, err := o.cfg.NewRegistry()
	if err != nil {
		return err
	}
	b := o.cfg.NewBroker(reg)
	if err := b.Connect(); err != nil {
		return err
	}
	defer b.Disconnect()
	if err := waitSubscribers(reg, o.topic, o.subscribers); err != nil {
		return err
	}
	body, err := json.Marshal(&peer.Event{ID: "bench", Timestamp: time.Now().Unix(), Message: "hello"})
	if err != nil {
		return err
	}
	header := map[string]string{"Content-Type": "application/json"}

	var published, errs atomic.Int64
	start := time.Now()
	end := start.Add(seconds(o.seconds))
	var wg sync.WaitGroup
	for i := 0; i < o.concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if published.Add(1) > int64(o.maxEvents) {
					published.Add(-1)
					return
				}
				m := &broker.Message{Header: header, Body: body}
				if err := b.Publish(o.topic, m); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "bench: publish: %v\n", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	finished := time.Now()
	peer.Emit(map[string]int64{
		"published": published.Load(),
		"errors":    errs.Load(),
		"start_ns":  start.UnixNano(),
		"end_ns":    finished.UnixNano(),
	})
	<-ctx.Done()
	return nil
}

// waitSubscribers waits (at most 10 s) until n subscriptions of topic are
// registered.
func waitSubscribers(reg registry.Registry, topic string, n int) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		found := 0
		services, err := reg.GetService("micro.http.broker")
		if err == nil {
			for _, s := range services {
				for _, node := range s.Nodes {
					if node.Metadata["topic"] == topic {
						found++
					}
				}
			}
		}
		if found >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d subscriptions of %s visible after 10s (last error: %v)", found, n, topic, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOwn waits (at most 10 s) until the subscription of topic at addr is
// registered.
func waitOwn(reg registry.Registry, topic, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		services, err := reg.GetService("micro.http.broker")
		if err == nil {
			for _, s := range services {
				for _, node := range s.Nodes {
					if node.Address == addr && node.Metadata["topic"] == topic {
						return nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("subscription of %s at %s not visible after 10s (last error: %v)", topic, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runSubscribe counts deliveries. After READY it prints
// {"received","first_ns","last_ns"} every 50 ms while the count changes, and
// once more when SIGTERM/SIGINT stops it.
func runSubscribe(o *opts) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reg, err := o.cfg.NewRegistry()
	if err != nil {
		return err
	}
	b := o.cfg.NewBroker(reg)
	if err := b.Connect(); err != nil {
		return err
	}
	defer b.Disconnect()
	var received, first, last atomic.Int64
	sub, err := b.Subscribe(o.topic, func(e broker.Event) error {
		now := time.Now().UnixNano()
		if received.Add(1) == 1 {
			first.Store(now)
		}
		last.Store(now)
		return nil
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := waitOwn(reg, o.topic, b.Address()); err != nil {
		return err
	}
	peer.Line("READY %s", b.Address())
	report := func() {
		peer.Emit(map[string]int64{"received": received.Load(), "first_ns": first.Load(), "last_ns": last.Load()})
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var seen int64
	for {
		select {
		case <-ctx.Done():
			report()
			return nil
		case <-tick.C:
			if n := received.Load(); n != seen {
				seen = n
				report()
			}
		}
	}
}
