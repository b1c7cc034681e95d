// Command client calls the helloworld service and queries the registry with
// go-micro v5.
//
//	client <call|fail|meta|echo|client-stream|server-stream|bidi|list|get|watch|wait-gone> [flags]
//
// Every result is one JSON line on stdout; a failure prints
// {"error":{"id","code","detail","status"}} and exits 1; bad usage exits 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go-micro.dev/v5"
	"go-micro.dev/v5/client"
	"go-micro.dev/v5/metadata"
	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/selector"

	"micro.local/interop/v5/internal/peer"
)

const usage = "usage: client <call|fail|meta|echo|client-stream|server-stream|bidi|list|get|watch|wait-gone> [flags]"

type app struct {
	reg     registry.Registry
	cl      client.Client
	service string
	ctx     context.Context
	opts    []client.CallOption

	name    string
	code    int
	detail  string
	count   int
	node    string
	seconds float64
	via     string
	seen    bool
	delay   time.Duration

	detailSize int
	metaCount  int
	bitsFile   string
	nils       bool
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		peer.Fatal(usage)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("client "+cmd, flag.ExitOnError)
	cfg := peer.AddFlags(fs)
	a := &app{}
	fs.StringVar(&a.service, "service", "helloworld", "service to call or look up (watch: empty = all)")
	address := fs.String("address", "", "call this host:port directly instead of selecting a node")
	md := peer.Pairs{}
	fs.Var(md, "metadata", "request metadata key=value (repeatable)")
	retries := fs.Int("retries", -1, "client retries (default: go-micro's)")
	timeout := fs.Duration("request_timeout", 0, "request timeout (default: go-micro's)")
	fs.StringVar(&a.name, "name", "world", "call: name to greet")
	fs.IntVar(&a.code, "code", 500, "fail: error code")
	fs.StringVar(&a.detail, "detail", "failure", "fail: error detail")
	fs.IntVar(&a.detailSize, "detail_size", 0, "fail: a detail of this many bytes instead of --detail")
	fs.IntVar(&a.metaCount, "meta_count", 0, "add this many metadata pairs X-Pair-<i>=v<i>")
	fs.StringVar(&a.bitsFile, "bits_file", "", "echo: float64 values to send, one per line as 16 hex digits of their bits")
	fs.BoolVar(&a.nils, "nils", false, "echo: leave every slice, map and pointer nil (Go sends null)")
	fs.IntVar(&a.count, "count", 3, "streams: number of messages")
	fs.DurationVar(&a.delay, "close_delay", 0, "client-stream: pause before Close (lets the server read every message before the connection drops)")
	fs.StringVar(&a.node, "node", "", "wait-gone: node id")
	fs.Float64Var(&a.seconds, "seconds", 10, "watch, wait-gone: duration")
	fs.StringVar(&a.via, "via", "selector", "wait-gone: look nodes up via the client's selector (cached) or the registry")
	fs.BoolVar(&a.seen, "seen_first", false, "wait-gone: first wait until the node is present and print READY, then wait until it is gone")
	_ = fs.Parse(os.Args[2:])
	if err := cfg.Check(); err != nil {
		peer.Fatal("client: %v", err)
	}

	reg, err := cfg.NewRegistry()
	if err != nil {
		peer.Fatal("client: %v", err)
	}
	svc := micro.New("helloworld-client", cfg.ServiceOptions(reg, cfg.NewBroker(reg))...)
	a.reg, a.cl = reg, svc.Client()
	a.ctx = context.Background()
	for i := 0; i < a.metaCount; i++ {
		md[fmt.Sprintf("X-Pair-%d", i)] = fmt.Sprintf("v%d", i)
	}
	if len(md) > 0 {
		a.ctx = metadata.NewContext(a.ctx, metadata.Metadata(md))
	}
	if a.detailSize > 0 {
		a.detail = peer.Detail(a.detailSize)
	}
	if *address != "" {
		a.opts = append(a.opts, client.WithAddress(*address))
	}
	if *retries >= 0 {
		a.opts = append(a.opts, client.WithRetries(*retries))
	}
	if *timeout > 0 {
		a.opts = append(a.opts, client.WithRequestTimeout(*timeout))
	}

	run := map[string]func() error{
		"call":          a.call,
		"fail":          a.fail,
		"meta":          a.meta,
		"echo":          a.echo,
		"client-stream": a.clientStream,
		"server-stream": a.serverStream,
		"bidi":          a.bidi,
		"list":          a.list,
		"get":           a.get,
		"watch":         a.watch,
		"wait-gone":     a.waitGone,
	}[cmd]
	if run == nil {
		peer.Fatal("client: unknown command %q\n%s", cmd, usage)
	}
	if err := run(); err != nil {
		peer.EmitError(err)
		os.Exit(1)
	}
}

func (a *app) unary(endpoint string, req, rsp any) error {
	if err := a.cl.Call(a.ctx, a.cl.NewRequest(a.service, endpoint, req), rsp, a.opts...); err != nil {
		return err
	}
	peer.Emit(rsp)
	return nil
}

func (a *app) call() error {
	return a.unary("Helloworld.Call", &peer.CallRequest{Name: a.name}, &peer.CallResponse{})
}

func (a *app) fail() error {
	return a.unary("Helloworld.Fail", &peer.FailRequest{Code: int32(a.code), Detail: a.detail}, &peer.FailResponse{})
}

// echo sends a Payload to Helloworld.Echo and prints what came back:
// {"kind":"echo","equal":bool,"mismatch":[...],"got_bits":[...],"payload":{...}}.
func (a *app) echo() error {
	bits, err := peer.ReadBits(a.bitsFile)
	if err != nil {
		return err
	}
	sent := peer.NewPayload(bits, a.nils)
	var got peer.Payload
	if err := a.cl.Call(a.ctx, a.cl.NewRequest(a.service, "Helloworld.Echo", sent), &got, a.opts...); err != nil {
		return err
	}
	mismatch := peer.Compare(sent, &got)
	peer.Emit(map[string]any{
		"kind":     "echo",
		"equal":    len(mismatch) == 0,
		"mismatch": mismatch,
		"got_bits": peer.Bits(got.F64s),
		"payload":  &got,
	})
	return nil
}

func (a *app) meta() error {
	return a.unary("Helloworld.Meta", &peer.MetaRequest{}, &peer.MetaResponse{})
}

// open starts a stream the way generated clients do: the opening message
// carries an empty request (the server discards it), real messages follow.
func (a *app) open(endpoint string, empty any) (client.Stream, error) {
	return a.cl.Stream(a.ctx, a.cl.NewRequest(a.service, endpoint, empty), a.opts...)
}

// clientStream sends count strokes and closes. go-micro clients cannot
// half-close, so the server's single reply is not read; it prints {"sent":N}.
func (a *app) clientStream() error {
	s, err := a.open("Helloworld.ClientStream", &peer.ClientStreamRequest{})
	if err != nil {
		return err
	}
	for i := 0; i < a.count; i++ {
		if err := s.Send(&peer.ClientStreamRequest{Stroke: int64(i)}); err != nil {
			_ = s.Close()
			return err
		}
	}
	time.Sleep(a.delay)
	if err := s.Close(); err != nil {
		return err
	}
	peer.Emit(map[string]int{"sent": a.count})
	return nil
}

func (a *app) serverStream() error {
	s, err := a.open("Helloworld.ServerStream", &peer.ServerStreamRequest{})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Send(&peer.ServerStreamRequest{Count: int64(a.count)}); err != nil {
		return err
	}
	for {
		var rsp peer.ServerStreamResponse
		err := s.Recv(&rsp)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		peer.Emit(&rsp)
	}
}

func (a *app) bidi() error {
	s, err := a.open("Helloworld.BidiStream", &peer.BidiStreamRequest{})
	if err != nil {
		return err
	}
	defer s.Close()
	for i := 0; i < a.count; i++ {
		if err := s.Send(&peer.BidiStreamRequest{Stroke: int64(i)}); err != nil {
			return err
		}
		var rsp peer.BidiStreamResponse
		if err := s.Recv(&rsp); err != nil {
			return err
		}
		peer.Emit(&rsp)
	}
	return nil
}

func (a *app) list() error {
	services, err := a.reg.ListServices()
	if err != nil {
		return err
	}
	peer.Emit(map[string]any{"services": services})
	return nil
}

func (a *app) get() error {
	services, err := a.reg.GetService(a.service)
	if err != nil {
		return err
	}
	peer.Emit(map[string]any{"services": services})
	return nil
}

// watch prints READY once the watch is open, then one
// {"action","service"} line per event until the time is up.
func (a *app) watch() error {
	var wopts []registry.WatchOption
	if a.service != "" {
		wopts = append(wopts, registry.WatchService(a.service))
	}
	w, err := a.reg.Watch(wopts...)
	if err != nil {
		return err
	}
	peer.Line("READY")
	timer := time.AfterFunc(seconds(a.seconds), w.Stop)
	defer timer.Stop()
	for {
		res, err := w.Next()
		if err != nil {
			return nil // stopped (time is up) or the watch ended
		}
		peer.Emit(map[string]any{"action": res.Action, "service": res.Service})
	}
}

// waitGone polls until the node is no longer returned, printing
// {"gone":true,"waited_ms":N}; it fails when the time is up.
//
// With --seen_first it first polls until the node is returned, then (with
// --via selector) makes sure the selector's cache watches the service, and
// prints READY; waited_ms then counts from READY. go-micro's cache starts its
// watch in the background, up to 100 ms after the lookup that filled it, and
// keeps an entry 60 s without re-reading it, so a node removed before the watch
// runs would stay in the selector for a minute. To know the watch runs, the
// client registers a probe node of the service, waits until the selector
// returns it (only the watch can bring it into a fresh entry), deregisters it
// and waits until the selector drops it.
func (a *app) waitGone() error {
	if a.node == "" {
		peer.Fatal("client: wait-gone needs --node")
	}
	start := time.Now()
	if a.seen {
		services, err := a.until(a.node, true, start)
		if err != nil {
			return err
		}
		if a.via == "selector" {
			if err := a.primeWatch(services, start); err != nil {
				return err
			}
		}
		peer.Line("READY")
		start = time.Now()
	}
	if _, err := a.until(a.node, false, start); err != nil {
		return err
	}
	peer.Emit(map[string]any{"gone": true, "waited_ms": time.Since(start).Milliseconds()})
	return nil
}

// until polls (every 50 ms, while --seconds since start allow) until the node
// id is returned (want true) or not (want false); returns the last services.
func (a *app) until(id string, want bool, start time.Time) ([]*registry.Service, error) {
	for {
		services, err := a.lookup()
		if err == nil && contains(services, id) == want {
			return services, nil
		}
		if time.Since(start) > seconds(a.seconds) {
			state := "still present"
			if want {
				state = "never present"
			}
			return nil, fmt.Errorf("node %s %s after %gs (last error: %v)", id, state, a.seconds, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// primeWatch registers a probe node next to the watched node, waits until
// the lookup returns it, deregisters it and waits until the lookup drops it.
// A probe registered before the watch started is never seen (etcd sends no
// event for it); it is then replaced by a new one, each given one second.
func (a *app) primeWatch(services []*registry.Service, start time.Time) error {
	version := ""
	for _, s := range services {
		if contains([]*registry.Service{s}, a.node) {
			version = s.Version
		}
	}
	for attempt := 1; ; attempt++ {
		probe := &registry.Service{
			Name:    a.service,
			Version: version,
			Nodes: []*registry.Node{{
				Id:       fmt.Sprintf("%s-watch-probe-%d-%d", a.service, os.Getpid(), attempt),
				Address:  "127.0.0.1:1",
				Metadata: map[string]string{"probe": "true"},
			}},
			Endpoints: []*registry.Endpoint{},
		}
		id := probe.Nodes[0].Id
		if err := a.reg.Register(probe, registry.RegisterTTL(time.Minute)); err != nil {
			return fmt.Errorf("register watch probe: %w", err)
		}
		seen := false
		for t := time.Now(); time.Since(t) < time.Second; time.Sleep(50 * time.Millisecond) {
			services, err := a.lookup()
			if err == nil && contains(services, id) {
				seen = true
				break
			}
		}
		if err := a.reg.Deregister(probe); err != nil {
			return fmt.Errorf("deregister watch probe: %w", err)
		}
		if seen {
			_, err := a.until(id, false, start)
			return err
		}
		if time.Since(start) > seconds(a.seconds) {
			return fmt.Errorf("the selector never showed a watch probe within %gs", a.seconds)
		}
	}
}

// lookup returns the services of --service as --via sees them (none when
// the service is unknown).
func (a *app) lookup() ([]*registry.Service, error) {
	var services []*registry.Service
	var err error
	switch a.via {
	case "registry":
		services, err = a.reg.GetService(a.service)
		if errors.Is(err, registry.ErrNotFound) {
			return nil, nil
		}
	case "selector":
		capture := func(s []*registry.Service) selector.Next {
			services = s
			return func() (*registry.Node, error) { return nil, selector.ErrNoneAvailable }
		}
		_, err = a.cl.Options().Selector.Select(a.service, selector.WithStrategy(capture))
		if errors.Is(err, selector.ErrNotFound) || errors.Is(err, selector.ErrNoneAvailable) {
			return nil, nil
		}
	default:
		peer.Fatal("client: --via must be selector or registry")
	}
	return services, err
}

func contains(services []*registry.Service, id string) bool {
	for _, s := range services {
		for _, n := range s.Nodes {
			if n.Id == id {
				return true
			}
		}
	}
	return false
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
