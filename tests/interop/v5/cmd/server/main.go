// Command server runs the helloworld service of the go-micro service template
// (plus Fail and Meta endpoints and an optional subscriber) on go-micro v5.
//
// stdout: "READY <node-id> <address>" once the node is visible in the
// registry, then one JSON line per received event ({"kind":"event",...}) and
// per finished ClientStream ({"kind":"client_stream","count":N,...}).
// SIGTERM/SIGINT stop the server, which deregisters before exiting.
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
	merrors "go-micro.dev/v5/errors"
	"go-micro.dev/v5/metadata"
	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/server"

	"micro.local/interop/v5/internal/peer"
)

// Helloworld is the handler; its type name is the endpoint prefix.
type Helloworld struct {
	// emitExec prints {"kind":"exec","endpoint":...} each time Fail or Echo runs,
	// so that tests can count executions (a retried call must not run twice).
	emitExec bool
}

// Call answers {"msg":"Hello <name>"}.
func (h *Helloworld) Call(ctx context.Context, req *peer.CallRequest, rsp *peer.CallResponse) error {
	rsp.Msg = "Hello " + req.Name
	return nil
}

// ClientStream counts client messages until end of stream, then answers once.
// A go-micro client cannot half-close (Close sends EOS and drops the
// connection), so the count is also printed for tests to observe.
func (h *Helloworld) ClientStream(ctx context.Context, stream server.Stream) error {
	var count int64
	for {
		var req peer.ClientStreamRequest
		err := stream.Recv(&req)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			peer.Emit(map[string]any{"kind": "client_stream", "count": count, "recv_error": err.Error()})
			return err
		}
		count++
	}
	err := stream.Send(&peer.ClientStreamResponse{Count: count})
	line := map[string]any{"kind": "client_stream", "count": count}
	if err != nil {
		line["send_error"] = err.Error()
	}
	peer.Emit(line)
	return err
}

// ServerStream answers {"count":i} for i in 0..count.
func (h *Helloworld) ServerStream(ctx context.Context, stream server.Stream) error {
	var req peer.ServerStreamRequest
	if err := stream.Recv(&req); err != nil {
		return err
	}
	for i := int64(0); i < req.Count; i++ {
		if err := stream.Send(&peer.ServerStreamResponse{Count: i}); err != nil {
			return err
		}
	}
	return nil
}

// BidiStream echoes every stroke until end of stream.
func (h *Helloworld) BidiStream(ctx context.Context, stream server.Stream) error {
	for {
		var req peer.BidiStreamRequest
		err := stream.Recv(&req)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&peer.BidiStreamResponse{Stroke: req.Stroke}); err != nil {
			return err
		}
	}
}

// Fail returns a go-micro error with id "helloworld" and the asked code/detail.
func (h *Helloworld) Fail(ctx context.Context, req *peer.FailRequest, rsp *peer.FailResponse) error {
	if h.emitExec {
		peer.Emit(map[string]any{"kind": "exec", "endpoint": "Fail"})
	}
	return merrors.New("helloworld", req.Detail, req.Code)
}

// Echo returns the payload it got (a zero payload, sent as {}, comes back
// with every slice, map and pointer nil: null in JSON).
func (h *Helloworld) Echo(ctx context.Context, req *peer.Payload, rsp *peer.Payload) error {
	if h.emitExec {
		peer.Emit(map[string]any{"kind": "exec", "endpoint": "Echo"})
	}
	*rsp = *req
	return nil
}

// Meta returns all metadata the handler received in its context.
func (h *Helloworld) Meta(ctx context.Context, req *peer.MetaRequest, rsp *peer.MetaResponse) error {
	md, _ := metadata.FromContext(ctx)
	rsp.Metadata = map[string]string{}
	for k, v := range md {
		rsp.Metadata[k] = v
	}
	return nil
}

func main() {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	cfg := peer.AddFlags(fs)
	name := fs.String("name", peer.Env("MICRO_SERVER_NAME", "helloworld"), "service name")
	version := fs.String("version", peer.Env("MICRO_SERVER_VERSION", "latest"), "service version")
	id := fs.String("server_id", os.Getenv("MICRO_SERVER_ID"), "server id (node id is <name>-<id>; default a random UUID)")
	md := peer.Pairs{}
	fs.Var(md, "server_metadata", "node metadata key=value (repeatable)")
	topic := fs.String("subscribe", "", "register a subscriber on this topic")
	queue := fs.String("queue", "", "queue (group) of the subscriber")
	emitExec := fs.Bool("emit_exec", false, "print a line each time Fail or Echo runs")
	_ = fs.Parse(os.Args[1:])
	if err := cfg.Check(); err != nil {
		peer.Fatal("server: %v", err)
	}

	reg, err := cfg.NewRegistry()
	if err != nil {
		peer.Fatal("server: %v", err)
	}
	opts := append(cfg.ServiceOptions(reg, cfg.NewBroker(reg)), micro.Version(*version), micro.Metadata(md))
	var service micro.Service
	opts = append(opts, micro.AfterStart(func() error { return announce(reg, service.Server().Options()) }))
	service = micro.New(*name, opts...)
	if *id != "" {
		if err := service.Server().Init(server.Id(*id)); err != nil {
			peer.Fatal("server: %v", err)
		}
	}
	if err := micro.RegisterHandler(service.Server(), &Helloworld{emitExec: *emitExec}); err != nil {
		peer.Fatal("server: %v", err)
	}
	if *topic != "" {
		var sopts []server.SubscriberOption
		if *queue != "" {
			sopts = append(sopts, server.SubscriberQueue(*queue))
		}
		handler := func(ctx context.Context, ev *peer.Event) error {
			md, _ := metadata.FromContext(ctx)
			peer.Emit(map[string]any{"kind": "event", "topic": *topic, "metadata": md, "event": ev})
			return nil
		}
		if err := micro.RegisterSubscriber(*topic, service.Server(), handler, sopts...); err != nil {
			peer.Fatal("server: %v", err)
		}
	}

	if err := service.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		_ = service.Server().Stop()
		os.Exit(1)
	}
}

// announce waits (at most 10 s) until the node is in the registry, then
// prints READY with the advertised address.
func announce(reg registry.Registry, o server.Options) error {
	nodeID := o.Name + "-" + o.Id
	deadline := time.Now().Add(10 * time.Second)
	for {
		services, err := reg.GetService(o.Name)
		if err == nil {
			for _, s := range services {
				for _, n := range s.Nodes {
					if n.Id == nodeID {
						peer.Line("READY %s %s", nodeID, n.Address)
						return nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not visible in the registry after 10s (last error: %v)", nodeID, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
