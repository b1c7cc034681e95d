// Command bench is the go-micro v5 side of the project's comparison benchmark
// (`scripts/bench.sh`). Each subcommand runs one workload and prints one JSON
// result line on stdout; logs go to stderr.
//
//	bench call      --service S --callers N --seconds S   unary Helloworld.Call load
//	bench bidi      --service S --seconds S                ping-pong on one BidiStream
//	bench publish   --topic T --subscribers N --seconds S  HTTP broker publisher
//	bench subscribe --topic T                              counting HTTP broker subscriber
//	bench discovery --rounds N                             etcd register/deregister to selector
//	bench scale     --start I --count M                    hold M registrations (scripts/scale.sh)
//	bench scalecache --services S                          registry cache memory per node
//
// call and bidi print {"calls","seconds","p50_us","p99_us","errors"}: calls
// (round trips) started inside the measured window after --warmup, and their
// latency percentiles.
package main

import (
	"flag"
	"os"
	"time"

	"micro.local/interop/v5/internal/peer"
)

const usage = "usage: bench <call|bidi|publish|subscribe|discovery|scale|scalecache> [flags]"

// opts holds every subcommand's flags; each subcommand reads the ones it needs.
type opts struct {
	cfg         *peer.Config
	service     string
	callers     int
	seconds     float64
	warmup      time.Duration
	topic       string
	subscribers int
	concurrency int
	maxEvents   int
	rounds      int
	start       int
	count       int
	services    int
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" {
		peer.Fatal(usage)
	}
	cmd := os.Args[1]
	fs := flag.NewFlagSet("bench "+cmd, flag.ExitOnError)
	o := &opts{cfg: peer.AddFlags(fs)}
	fs.StringVar(&o.service, "service", "helloworld", "call, bidi: service to call; discovery: service name to register")
	fs.IntVar(&o.callers, "callers", 1, "call: concurrent callers")
	fs.Float64Var(&o.seconds, "seconds", 3, "call, bidi, publish: measured seconds")
	fs.DurationVar(&o.warmup, "warmup", 300*time.Millisecond, "call, bidi: warm-up before the measured window")
	fs.StringVar(&o.topic, "topic", "bench.events", "publish, subscribe: topic")
	fs.IntVar(&o.subscribers, "subscribers", 1, "publish: wait until this many subscriptions of the topic are registered")
	fs.IntVar(&o.concurrency, "concurrency", 32, "publish: concurrent publishers")
	fs.IntVar(&o.maxEvents, "max_events", 1000000, "publish: stop after this many events")
	fs.IntVar(&o.rounds, "rounds", 100, "discovery: measured rounds")
	fs.IntVar(&o.start, "start", 0, "scale: first node index")
	fs.IntVar(&o.count, "count", 10, "scale: nodes to hold")
	fs.IntVar(&o.services, "services", 1, "scalecache: services to look up")
	_ = fs.Parse(os.Args[2:])
	if err := o.cfg.Check(); err != nil {
		peer.Fatal("bench: %v", err)
	}
	run := map[string]func(*opts) error{
		"call":       runCall,
		"bidi":       runBidi,
		"publish":    runPublish,
		"subscribe":  runSubscribe,
		"discovery":  runDiscovery,
		"scale":      runScale,
		"scalecache": runScaleCache,
	}[cmd]
	if run == nil {
		peer.Fatal("bench: unknown command %q\n%s", cmd, usage)
	}
	if err := run(o); err != nil {
		peer.EmitError(err)
		os.Exit(1)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
