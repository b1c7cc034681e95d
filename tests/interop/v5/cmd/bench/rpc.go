package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"go-micro.dev/v5"
	"go-micro.dev/v5/client"

	"micro.local/interop/v5/internal/peer"
)

// result is the line call and bidi print.
type result struct {
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	Errors  int     `json:"errors"`
}

// window is the warm-up end and the measured window's end.
type window struct{ start, end time.Time }

func newWindow(o *opts) window {
	start := time.Now().Add(o.warmup)
	return window{start: start, end: start.Add(seconds(o.seconds))}
}

// newClient is a go-micro client whose selector discovers through the registry.
func newClient(o *opts) (client.Client, error) {
	reg, err := o.cfg.NewRegistry()
	if err != nil {
		return nil, err
	}
	svc := micro.New("bench-client", o.cfg.ServiceOptions(reg, o.cfg.NewBroker(reg))...)
	return svc.Client(), nil
}

// loop runs one caller until the window ends: latencies of the round trips
// started inside the window, and the number that failed.
func loop(w window, once func() error) (lat []time.Duration, errs int) {
	lat = make([]time.Duration, 0, 1<<16)
	for {
		t0 := time.Now()
		if !t0.Before(w.end) {
			return lat, errs
		}
		err := once()
		if t0.Before(w.start) {
			continue
		}
		if err != nil {
			if errs < 10 {
				// the first errors of each caller, with when they happened
				fmt.Fprintf(os.Stderr, "bench: at %s: %v\n", t0.Format("15:04:05.000"), err)
			}
			errs++
			continue
		}
		lat = append(lat, time.Since(t0))
	}
}

func summarise(o *opts, all []time.Duration, errs int) result {
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(float64(len(all)) * p)
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i].Nanoseconds()) / 1e3
	}
	return result{Calls: len(all), Seconds: o.seconds, P50us: pct(0.50), P99us: pct(0.99), Errors: errs}
}

// runCall: --callers goroutines call Helloworld.Call in a loop.
func runCall(o *opts) error {
	cl, err := newClient(o)
	if err != nil {
		return err
	}
	w := newWindow(o)
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var wg sync.WaitGroup
	for i := 0; i < o.callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			lat, e := loop(w, func() error {
				var rsp peer.CallResponse
				req := cl.NewRequest(o.service, "Helloworld.Call", &peer.CallRequest{Name: "bench"})
				if err := cl.Call(ctx, req, &rsp); err != nil {
					return err
				}
				if rsp.Msg != "Hello bench" {
					return fmt.Errorf("unexpected reply %q", rsp.Msg)
				}
				return nil
			})
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	peer.Emit(summarise(o, all, errs))
	return nil
}

// runBidi: one BidiStream, one message out and its echo back per round trip.
func runBidi(o *opts) error {
	cl, err := newClient(o)
	if err != nil {
		return err
	}
	ctx := context.Background()
	s, err := cl.Stream(ctx, cl.NewRequest(o.service, "Helloworld.BidiStream", &peer.BidiStreamRequest{}))
	if err != nil {
		return err
	}
	defer s.Close()
	w := newWindow(o)
	var n int64
	lat, errs := loop(w, func() error {
		n++
		if err := s.Send(&peer.BidiStreamRequest{Stroke: n}); err != nil {
			return err
		}
		var rsp peer.BidiStreamResponse
		if err := s.Recv(&rsp); err != nil {
			return err
		}
		if rsp.Stroke != n {
			return fmt.Errorf("echo %d for %d", rsp.Stroke, n)
		}
		return nil
	})
	peer.Emit(summarise(o, lat, errs))
	return nil
}
