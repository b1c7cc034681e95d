package main

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/registry/cache"

	"micro.local/interop/v5/internal/peer"
)

// The simulated mesh of the scale benchmark (tests/src/harness/scale.rs):
// node i belongs to service scale.s<i/10>, has id scale-n<i>, address
// 127.0.0.1:<10000 + i%50000>, go-micro's five node metadata keys and two
// endpoints with request and response shapes.
const nodesPerService = 10

func scaleRecord(i int, reg string) *registry.Service {
	value := func(name, field string) *registry.Value {
		return &registry.Value{Name: name, Type: name, Values: []*registry.Value{{Name: field, Type: "string"}}}
	}
	return &registry.Service{
		Name:    fmt.Sprintf("scale.s%d", i/nodesPerService),
		Version: "latest",
		Endpoints: []*registry.Endpoint{
			{Name: "Scale.Call", Request: value("CallRequest", "name"), Response: value("CallResponse", "msg"), Metadata: map[string]string{}},
			{Name: "Scale.Stream", Request: value("StreamRequest", "name"), Response: value("StreamResponse", "msg"), Metadata: map[string]string{"stream": "true"}},
		},
		Nodes: []*registry.Node{{
			Id:      fmt.Sprintf("scale-n%d", i),
			Address: fmt.Sprintf("127.0.0.1:%d", 10000+i%50000),
			Metadata: map[string]string{
				"broker": "http", "protocol": "mucp", "registry": reg, "server": "mucp", "transport": "http",
			},
		}},
	}
}

// scaleRegister is a go-micro server's registration: up to three attempts
// with its backoff between them.
func scaleRegister(r registry.Registry, s *registry.Service, ttl time.Duration) bool {
	for attempt := 1; attempt <= 3; attempt++ {
		if err := r.Register(s, registry.RegisterTTL(ttl)); err == nil {
			return true
		}
		if attempt < 3 {
			time.Sleep(time.Duration(math.Floor(math.Pow(float64(attempt), math.E))) * 100 * time.Millisecond)
		}
	}
	return false
}

// runScale holds nodes --start .. --start+--count through one go-micro
// registry, each re-registered every --register_interval with
// --register_ttl, as go-micro's server does (the v5 etcd registry keeps each
// node's lease alive over its client's keepalive stream). Prints
// `READY {"nodes","failed"}` after the first registrations, then runs until
// SIGTERM/SIGINT, printing `STATS null` before it exits.
func runScale(o *opts) error {
	r, err := o.cfg.NewRegistry()
	if err != nil {
		return err
	}
	ttl := time.Duration(o.cfg.RegisterTTL) * time.Second
	interval := time.Duration(o.cfg.RegisterInterval) * time.Second
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	services := make([]*registry.Service, o.count)
	for k := range services {
		services[k] = scaleRecord(o.start+k, r.String())
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	gate := make(chan struct{}, 64)
	for _, s := range services {
		wg.Add(1)
		gate <- struct{}{}
		go func(s *registry.Service) {
			defer wg.Done()
			defer func() { <-gate }()
			if !scaleRegister(r, s, ttl) {
				failed.Add(1)
			}
		}(s)
	}
	wg.Wait()
	peer.Line(`READY {"nodes":%d,"failed":%d}`, o.count, failed.Load())
	for _, s := range services {
		go func(s *registry.Service) {
			time.Sleep(time.Duration(rand.Float64() * float64(interval)))
			t := time.NewTicker(interval)
			defer t.Stop()
			for range t.C {
				scaleRegister(r, s, ttl)
			}
		}(s)
	}
	<-sigs
	peer.Line("STATS null")
	return nil
}

// runScaleCache measures what go-micro's registry cache holds per node: the
// Go heap in use (after a GC) before and after looking up --services services
// of the simulated mesh through one cache.New(registry) (whose watches start
// on the first lookup of each service), and the cold and warm lookup times.
// Prints {"services","nodes","bytes","bytes_per_node","cold_p50_us","warm_p50_us"}.
func runScaleCache(o *opts) error {
	r, err := o.cfg.NewRegistry()
	if err != nil {
		return err
	}
	// Connect the client before the baseline, so it is not counted.
	if _, err := r.GetService("scale.s0"); err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	c := cache.New(r)
	defer c.Stop()
	nodes := 0
	var cold, warm []time.Duration
	for s := 0; s < o.services; s++ {
		name := fmt.Sprintf("scale.s%d", s)
		t := time.Now()
		list, err := c.GetService(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		cold = append(cold, time.Since(t))
		for _, v := range list {
			nodes += len(v.Nodes)
		}
	}
	// Each service's watch starts within 100 ms of its first lookup.
	time.Sleep(2 * time.Second)
	for s := 0; s < o.services; s++ {
		t := time.Now()
		if _, err := c.GetService(fmt.Sprintf("scale.s%d", s)); err != nil {
			return err
		}
		warm = append(warm, time.Since(t))
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	after := ms.HeapAlloc
	runtime.KeepAlive(c)
	us := func(v []time.Duration) float64 {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return float64(v[len(v)/2].Nanoseconds()) / 1e3
	}
	bytes := int64(after) - int64(before)
	peer.Emit(map[string]any{
		"services": o.services, "nodes": nodes, "bytes": bytes,
		"bytes_per_node": float64(bytes) / float64(max(nodes, 1)),
		"cold_p50_us":    us(cold), "warm_p50_us": us(warm),
	})
	return nil
}
