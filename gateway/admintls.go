package gateway

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// plainHTTPAnswer is what a plain HTTP request to the TLS admin port gets:
// a client that forgot https:// (or --ca) learns why instead of seeing the
// connection drop. net/http answers the same way.
const plainHTTPAnswer = "HTTP/1.0 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" +
	`{"error":"this admin API speaks TLS (serve --admin-tls-cert): use https:// and the cluster CA (modelgate --ca, curl --cacert)"}` + "\n"

// adminListener is the listener the admin server serves: the connection
// guard, under TLS when Config.AdminTLS is set.
func (s *Server) adminListener() net.Listener {
	if s.cfg.AdminTLS == nil {
		return s.aln
	}
	return tlsListener{Listener: s.aln, cfg: s.cfg.AdminTLS}
}

// tlsListener is tls.NewListener whose connections answer a plain HTTP
// request with plainHTTPAnswer. The handshake runs on the connection's
// first Read, under fasthttp's deadlines, as with tls.NewListener.
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tlsConn{tls.Server(c, l.cfg)}, nil
}

// tlsConn embeds *tls.Conn so fasthttp still sees a TLS connection
// (RequestCtx.IsTLS, TLSConnectionState).
type tlsConn struct{ *tls.Conn }

func (c tlsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	var rh tls.RecordHeaderError
	if err != nil && errors.As(err, &rh) && rh.Conn != nil && looksLikeHTTP(rh.RecordHeader) {
		_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = io.WriteString(rh.Conn, plainHTTPAnswer)
	}
	return n, err
}

// looksLikeHTTP says whether a TLS record header is the start of an HTTP
// request line instead (net/http's tlsRecordHeaderLooksLikeHTTP).
func looksLikeHTTP(h [5]byte) bool {
	switch string(h[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}
