package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/raft"
)

// Mutual TLS on the Raft transport. With Config.TLS set, every Raft
// connection is TLS 1.3 and both ends present a certificate the other
// verifies against the cluster's CA: a process without a certificate the
// CA signed can neither join the replication nor impersonate a member.
// Certificates name their node's IP address (a SAN), since Raft dials
// addresses.

// LoadMutualTLS builds a Config.TLS from PEM files: this node's
// certificate and key, and the CA that signs every member's certificate.
// The errors name the file at fault.
func LoadMutualTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot load the raft TLS certificate %s and key %s: %w", ErrInvalidConfig, certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot read the raft TLS CA %s: %w", ErrInvalidConfig, caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: the raft TLS CA %s holds no PEM certificate", ErrInvalidConfig, caFile)
	}
	return MutualTLS(cert, pool), nil
}

// MutualTLS is the TLS configuration of a member holding cert, trusting
// members whose certificates ca signed, as servers and as clients.
func MutualTLS(cert tls.Certificate, ca *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca,
		ClientCAs:    ca,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// checkTLS says what a Config.TLS lacks for mutual authentication.
func checkTLS(c *tls.Config) string {
	switch {
	case len(c.Certificates) == 0 && c.GetCertificate == nil:
		return "has no certificate of this node"
	case c.RootCAs == nil:
		return "has no CA to verify the members it dials (RootCAs)"
	case c.ClientCAs == nil || c.ClientAuth != tls.RequireAndVerifyClientCert:
		return "does not require and verify the certificates of the members that dial it (ClientCAs, ClientAuth RequireAndVerifyClientCert)"
	}
	return ""
}

// tlsStream is a raft.StreamLayer of mutually authenticated TLS over TCP,
// or of plain TCP when its cfg is nil (under a Fault, whose wrapper needs
// a stream layer raft's TCP transport does not expose).
type tlsStream struct {
	net.Listener
	cfg       *tls.Config
	advertise net.Addr
}

var _ raft.StreamLayer = (*tlsStream)(nil)

func newTLSStream(bind string, advertise net.Addr, cfg *tls.Config) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return &tlsStream{Listener: ln, advertise: advertise}, nil
	}
	return &tlsStream{Listener: tls.NewListener(ln, cfg), cfg: cfg, advertise: advertise}, nil
}

// Dial opens a TLS connection to a member, verifying its certificate
// against the CA for the address it dials, within timeout (handshake
// included).
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if s.cfg == nil {
		return d.Dial("tcp", string(addr))
	}
	conn, err := tls.DialWithDialer(d, "tcp", string(addr), s.cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft TLS to %s: %w", addr, err)
	}
	return conn, nil
}

// Addr is the address other members dial: the advertised one, else the
// bound one.
func (s *tlsStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}
