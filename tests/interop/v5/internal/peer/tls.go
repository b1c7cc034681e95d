package peer

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"os"

	"go-micro.dev/v5"
	"go-micro.dev/v5/broker"
	"go-micro.dev/v5/transport"
)

// TLS holds the TLS flags. --secure alone is go-micro's Secure mode with its
// defaults (a self-signed certificate for servers and brokers; the brokers'
// clients skip verification, the RPC client verifies against the system roots);
// the file flags build a tls.Config the way a go-micro user gives one.
type TLS struct {
	Secure             bool
	CA                 string
	Cert               string
	Key                string
	ClientCA           string
	InsecureSkipVerify bool
}

func addTLSFlags(fs *flag.FlagSet) *TLS {
	t := &TLS{}
	fs.BoolVar(&t.Secure, "secure", false, "Secure transport and broker (TLS)")
	fs.StringVar(&t.CA, "tls-ca", "", "PEM file of the CA peers' certificates must chain to")
	fs.StringVar(&t.Cert, "tls-cert", "", "PEM file of this program's certificate")
	fs.StringVar(&t.Key, "tls-key", "", "PEM file of this program's private key")
	fs.StringVar(&t.ClientCA, "tls-client-ca", "", "require client certificates from this CA (mutual TLS)")
	fs.BoolVar(&t.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify peers' certificates")
	return t
}

// Config is the tls.Config the flags describe, or nil when no file or
// skip-verify flag is given (go-micro's defaults apply). Each call returns a new
// one: go-micro's transport writes into the config it is given.
func (t *TLS) Config() *tls.Config {
	if t.CA == "" && t.Cert == "" && t.ClientCA == "" && !t.InsecureSkipVerify {
		return nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CA != "" {
		c.RootCAs = pool(t.CA)
	}
	if t.Cert != "" || t.Key != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			Fatal("tls: %v", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if t.ClientCA != "" {
		c.ClientCAs = pool(t.ClientCA)
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c
}

// On reports whether TLS is asked for at all.
func (t *TLS) On() bool { return t.Secure || t.Config() != nil }

func pool(file string) *x509.CertPool {
	pem, err := os.ReadFile(file)
	if err != nil {
		Fatal("tls: %v", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		Fatal("tls: no certificate in %s", file)
	}
	return p
}

func (t *TLS) brokerOptions() []broker.Option {
	var out []broker.Option
	if t.Secure {
		out = append(out, broker.Secure(true))
	}
	if c := t.Config(); c != nil {
		out = append(out, broker.TLSConfig(c))
	}
	return out
}

func (t *TLS) serviceOptions() []micro.Option {
	if !t.On() {
		return nil
	}
	opts := []transport.Option{transport.Secure(t.Secure)}
	if c := t.Config(); c != nil {
		opts = append(opts, transport.TLSConfig(c))
	}
	return []micro.Option{micro.Transport(transport.NewHTTPTransport(opts...))}
}
