package main

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"time"

	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/selector"

	"micro.local/interop/v5/internal/peer"
)

// roundLimit bounds each wait; a round that takes longer fails the run.
const roundLimit = 10 * time.Second

// runDiscovery measures how long after Register (Deregister) on one etcd
// connection a go-micro selector on another connection returns (stops
// returning) the node: the same procedure as the Rust side's
// tests/benches/etcd_discovery.rs. The selector is polled in a tight loop
// with a yield between polls. Prints
// {"rounds","up_p50_us","up_p99_us","down_p50_us","down_p99_us"}.
func runDiscovery(o *opts) error {
	server, err := o.cfg.NewRegistry()
	if err != nil {
		return err
	}
	watcher, err := o.cfg.NewRegistry()
	if err != nil {
		return err
	}
	sel := selector.NewSelector(selector.Registry(watcher))
	defer sel.Close()
	ttl := registry.RegisterTTL(30 * time.Second)
	node := func(id, addr string) *registry.Service {
		return &registry.Service{Name: o.service, Version: "latest", Nodes: []*registry.Node{{Id: id, Address: addr, Metadata: map[string]string{}}}}
	}

	anchor := node("anchor", "127.0.0.1:1")
	if err := server.Register(anchor, ttl); err != nil {
		return err
	}
	defer server.Deregister(anchor)
	if _, err := present(sel, o.service, "anchor"); err != nil {
		return err
	}
	// The selector's cache watches the service after its first lookup; a
	// probe rewritten until the selector returns it proves the watch is live.
	live := false
	for attempt := 0; attempt < 100 && !live; attempt++ {
		probe := node("probe", fmt.Sprintf("127.0.0.1:%d", 1000+attempt))
		if err := server.Register(probe, ttl); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
		if ok, _ := presentAt(sel, o.service, "probe", probe.Nodes[0].Address); ok {
			live = true
		}
		if live {
			if err := server.Deregister(probe); err != nil {
				return err
			}
		}
	}
	if !live {
		return errors.New("the selector's cache never saw the watch events")
	}

	var up, down []time.Duration
	for round := 0; round <= o.rounds; round++ {
		id := fmt.Sprintf("node-%d", round)
		svc := node(id, "127.0.0.1:2")
		t := time.Now()
		if err := server.Register(svc, ttl); err != nil {
			return err
		}
		if err := waitFor(sel, o.service, id, true); err != nil {
			return err
		}
		dUp := time.Since(t)
		t = time.Now()
		if err := server.Deregister(svc); err != nil {
			return err
		}
		if err := waitFor(sel, o.service, id, false); err != nil {
			return err
		}
		dDown := time.Since(t)
		if round > 0 {
			up = append(up, dUp)
			down = append(down, dDown)
		}
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	u50, u99 := percentiles(up)
	d50, d99 := percentiles(down)
	peer.Emit(map[string]any{
		"rounds": o.rounds, "up_p50_us": us(u50), "up_p99_us": us(u99),
		"down_p50_us": us(d50), "down_p99_us": us(d99),
	})
	return nil
}

// percentiles: the nearest-rank p50 and p99.
func percentiles(v []time.Duration) (time.Duration, time.Duration) {
	if len(v) == 0 {
		return 0, 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	at := func(p float64) time.Duration {
		i := int(float64(len(v))*p+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(v) {
			i = len(v) - 1
		}
		return v[i]
	}
	return at(0.50), at(0.99)
}

func waitFor(sel selector.Selector, service, id string, want bool) error {
	deadline := time.Now().Add(roundLimit)
	for {
		ok, _ := present(sel, service, id)
		if ok == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s present=%v not seen within %v", id, want, roundLimit)
		}
		runtime.Gosched()
	}
}

func present(sel selector.Selector, service, id string) (bool, error) {
	return presentAt(sel, service, id, "")
}

// presentAt reports whether the selector returns node id (at addr, when
// given), looking at every node its strategy is handed.
func presentAt(sel selector.Selector, service, id, addr string) (bool, error) {
	var services []*registry.Service
	capture := func(s []*registry.Service) selector.Next {
		services = s
		return func() (*registry.Node, error) { return nil, selector.ErrNoneAvailable }
	}
	if _, err := sel.Select(service, selector.WithStrategy(capture)); err != nil {
		return false, err
	}
	for _, s := range services {
		for _, n := range s.Nodes {
			if n.Id == id && (addr == "" || n.Address == addr) {
				return true, nil
			}
		}
	}
	return false, nil
}
