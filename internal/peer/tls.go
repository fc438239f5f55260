package peer

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Mutual TLS on the admin API. One *tls.Config serves both ends of
// node-to-node HTTP: the admin listener presents this node's certificate
// and checks the certificates of clients against the cluster CA, and the
// Client presents the same certificate to every peer and verifies theirs
// against the same CA. Member admin addresses are ip:port, so certificates
// name their node's IP address (a SAN), as on the Raft transport.

// ClientCerts is the admin listener's policy for client certificates.
type ClientCerts string

// The client-certificate policies.
const (
	// Require (serve's default) refuses every client without a
	// certificate the cluster CA signed: mutual TLS in full. Operators
	// need a certificate too (modelgate --cert/--key, curl --cert/--key).
	Require ClientCerts = "require"
	// VerifyIfGiven asks every client for a certificate and refuses the
	// handshake of one presenting a certificate the cluster CA did not
	// sign, but lets a client without one through, so an operator with
	// only `curl --cacert` and a bearer token reaches the API. Members
	// still present theirs and verify each other's server certificates;
	// a client without a certificate is authorized by its bearer token
	// alone, which every route checks anyway.
	VerifyIfGiven ClientCerts = "verify-if-given"
)

// ErrBadTLS is returned, wrapped with the file at fault, when the admin
// API's TLS files cannot be loaded.
var ErrBadTLS = errors.New("peer: bad admin TLS configuration")

// LoadTLS builds the admin API's TLS configuration from PEM files: this
// node's certificate and key, and the CA that signs every member's
// certificate. The errors name the file and the flag at fault.
func LoadTLS(certFile, keyFile, caFile string, clients ClientCerts) (*tls.Config, error) {
	auth, err := clients.authType()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot load the certificate %s and key %s (--admin-tls-cert, --admin-tls-key): %w", ErrBadTLS, certFile, keyFile, err)
	}
	pool, err := LoadCA(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (--admin-tls-ca)", ErrBadTLS, err)
	}
	return MutualTLS(cert, pool, auth), nil
}

// LoadCA reads a PEM file of CA certificates into a pool.
func LoadCA(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read the CA %s: %w", caFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("the CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// MutualTLS is the admin TLS configuration of a member holding cert,
// trusting peers whose certificates ca signed, as a server (asking
// clients for certificates as auth says) and as a client.
func MutualTLS(cert tls.Certificate, ca *x509.CertPool, auth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca,
		ClientCAs:    ca,
		ClientAuth:   auth,
		// 1.2, not 1.3 only: operators' tools reach the admin API too.
		MinVersion: tls.VersionTLS12,
	}
}

func (c ClientCerts) authType() (tls.ClientAuthType, error) {
	switch c {
	case Require, "":
		return tls.RequireAndVerifyClientCert, nil
	case VerifyIfGiven:
		return tls.VerifyClientCertIfGiven, nil
	}
	return 0, fmt.Errorf("%w: client certificate policy %q: want %s or %s", ErrBadTLS, string(c), VerifyIfGiven, Require)
}
