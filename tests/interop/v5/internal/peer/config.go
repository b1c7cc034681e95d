package peer

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go-micro.dev/v5"
	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/registry"
	"go-micro.dev/v5/registry/consul"
	"go-micro.dev/v5/registry/etcd"
)

// Config holds the flags every program takes. Each flag defaults to the
// go-micro environment variable of the same name (MICRO_REGISTRY, ...).
type Config struct {
	Registry         string
	RegistryAddress  string
	ServerAddress    string
	BrokerAddress    string
	RegisterTTL      int
	RegisterInterval int
	TLS              *TLS
}

// AddFlags registers the common flags on fs.
func AddFlags(fs *flag.FlagSet) *Config {
	c := &Config{}
	fs.StringVar(&c.Registry, "registry", Env("MICRO_REGISTRY", "etcd"), "registry: etcd or consul")
	fs.StringVar(&c.RegistryAddress, "registry_address", Env("MICRO_REGISTRY_ADDRESS", ""), "registry host:port list, comma separated (default: the plugin's 127.0.0.1 default)")
	fs.StringVar(&c.ServerAddress, "server_address", Env("MICRO_SERVER_ADDRESS", "127.0.0.1:0"), "RPC server listen and advertise address")
	fs.StringVar(&c.BrokerAddress, "broker_address", Env("MICRO_BROKER_ADDRESS", "127.0.0.1:0"), "HTTP broker listen and advertise address")
	fs.IntVar(&c.RegisterTTL, "register_ttl", envInt("MICRO_REGISTER_TTL", 60), "registration TTL in seconds")
	fs.IntVar(&c.RegisterInterval, "register_interval", envInt("MICRO_REGISTER_INTERVAL", 30), "re-registration interval in seconds")
	c.TLS = addTLSFlags(fs)
	return c
}

// Check rejects addresses that would leave loopback.
func (c *Config) Check() error {
	for _, a := range []string{c.ServerAddress, c.BrokerAddress} {
		if err := loopback(a); err != nil {
			return err
		}
	}
	for _, a := range c.registryAddrs() {
		if err := loopback(a); err != nil {
			return err
		}
	}
	if c.RegisterTTL < 0 || c.RegisterInterval < 0 {
		return fmt.Errorf("register_ttl and register_interval must not be negative")
	}
	return nil
}

func (c *Config) registryAddrs() []string {
	var out []string
	for _, a := range strings.Split(c.RegistryAddress, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// NewRegistry builds the etcd or consul registry.
func (c *Config) NewRegistry() (registry.Registry, error) {
	opts := []registry.Option{registry.Timeout(5 * time.Second)}
	if addrs := c.registryAddrs(); len(addrs) > 0 {
		opts = append(opts, registry.Addrs(addrs...))
	}
	switch c.Registry {
	case "etcd":
		return etcd.NewEtcdRegistry(opts...), nil
	case "consul":
		return consul.NewConsulRegistry(opts...), nil
	default:
		return nil, fmt.Errorf("unknown registry %q (want etcd or consul)", c.Registry)
	}
}

// NewBroker builds the HTTP broker on the given registry. It must be built
// with broker.Registry: micro.Broker(b) given after micro.Registry(r) would
// otherwise leave it on the default (mDNS) registry.
func (c *Config) NewBroker(r registry.Registry) broker.Broker {
	return broker.NewHttpBroker(append([]broker.Option{broker.Registry(r), broker.Addrs(c.BrokerAddress)}, c.TLS.brokerOptions()...)...)
}

// ServiceOptions are the micro options that wire registry, broker, address
// and registration timing into a service. Order matters: Registry first.
func (c *Config) ServiceOptions(r registry.Registry, b broker.Broker) []micro.Option {
	return append([]micro.Option{
		micro.Registry(r),
		micro.Broker(b),
		micro.Address(c.ServerAddress),
		micro.RegisterTTL(time.Duration(c.RegisterTTL) * time.Second),
		micro.RegisterInterval(time.Duration(c.RegisterInterval) * time.Second),
	}, c.TLS.serviceOptions()...)
}

func loopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("address %q is not a loopback address", addr)
}

// Env returns the environment variable key, or def when it is unset or empty.
func Env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// Pairs is a repeatable k=v flag.
type Pairs map[string]string

func (p Pairs) String() string { return fmt.Sprint(map[string]string(p)) }

// Set parses one k=v pair.
func (p Pairs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}
