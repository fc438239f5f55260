package gateway

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/gateway/oip"
)

// connGuard is a listener that bounds the connections it hands out: at
// most max open at once, and at most perIP from one client address. A
// connection past either limit is answered here, before fasthttp sees it:
// 503 past max (every client waits alike), 429 past perIP (that client is
// over its share) — JSON like every other error, with Retry-After, and
// counted in modelgate_request_errors_total. fasthttp's own limits answer
// text/plain and count nothing, which is why they are not used.
//
// A connection counts from Accept until it is closed, so connections that
// trickle their headers count against their address until HeaderTimeout
// drops them: one address cannot hold the whole listener.
type connGuard struct {
	net.Listener
	max, perIP int
	metrics    *Metrics
	hook       func(net.Conn) net.Conn // Server.connHook

	open    atomic.Int64
	mu      sync.Mutex
	byAddr  map[netip.Addr]int
	refusal chan struct{} // bounds the goroutines answering refusals
}

// maxRefusing bounds the refusals answered at once; past it a refused
// connection is closed without an answer rather than grow goroutines
// under a flood.
const maxRefusing = 256

func newConnGuard(ln net.Listener, max, perIP int, m *Metrics) *connGuard {
	return &connGuard{Listener: ln, max: max, perIP: perIP, metrics: m,
		byAddr: map[netip.Addr]int{}, refusal: make(chan struct{}, maxRefusing)}
}

// Accept returns the next connection within the limits, answering and
// closing the others.
func (g *connGuard) Accept() (net.Conn, error) {
	for {
		c, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			// Dead peers are found by the kernel, not by a slot held forever.
			_ = tc.SetKeepAlive(true)
		}
		if g.open.Add(1) > int64(g.max) {
			g.open.Add(-1)
			g.refuse(c, fasthttp.StatusServiceUnavailable, "the node is serving its limit of "+strconv.Itoa(g.max)+" connections (serve --concurrency): retry shortly")
			continue
		}
		addr := remoteAddr(c)
		if g.perIP > 0 && addr.IsValid() {
			g.mu.Lock()
			n := g.byAddr[addr] + 1
			if n > g.perIP {
				g.mu.Unlock()
				g.open.Add(-1)
				g.refuse(c, fasthttp.StatusTooManyRequests, "this address holds its limit of "+strconv.Itoa(g.perIP)+" connections (serve --max-conns-per-ip): reuse a keep-alive connection or retry shortly")
				continue
			}
			g.byAddr[addr] = n
			g.mu.Unlock()
		}
		if g.hook != nil {
			c = g.hook(c)
		}
		return &guardedConn{Conn: c, g: g, addr: addr}, nil
	}
}

// OpenConns reports the connections the guard has handed out and not yet
// seen closed.
func (g *connGuard) OpenConns() int { return int(g.open.Load()) }

func (g *connGuard) release(addr netip.Addr) {
	g.open.Add(-1)
	if g.perIP > 0 && addr.IsValid() {
		g.mu.Lock()
		if n := g.byAddr[addr] - 1; n > 0 {
			g.byAddr[addr] = n
		} else {
			delete(g.byAddr, addr)
		}
		g.mu.Unlock()
	}
}

// refuse answers c with code and closes it, off the accept loop so that a
// slow reader cannot stall accepting. The answer is followed by a half
// close and a short read of whatever the client already sent: closing with
// unread data makes the kernel send a reset, and the client would see
// "connection reset" instead of the answer.
func (g *connGuard) refuse(c net.Conn, code int, msg string) {
	g.metrics.errorCounter("", code).Inc()
	select {
	case g.refusal <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-g.refusal }()
		defer c.Close()
		body := oip.AppendError(nil, msg)
		resp := make([]byte, 0, 192+len(body))
		resp = append(resp, "HTTP/1.1 "...)
		resp = strconv.AppendInt(resp, int64(code), 10)
		resp = append(resp, ' ')
		resp = append(resp, fasthttp.StatusMessage(code)...)
		resp = append(resp, "\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "...)
		resp = strconv.AppendInt(resp, int64(len(body)), 10)
		resp = append(resp, "\r\n\r\n"...)
		resp = append(resp, body...)
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(resp); err != nil {
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// guardedConn gives its slot back on Close, once, and hands read deadlines
// to the socket only when a Read needs them.
//
// fasthttp sets three read deadlines per keep-alive request: the idle
// timeout before the next request's first byte, HeaderTimeout once it
// arrives, ReadTimeout once the headers are in. The request has usually
// arrived whole with its first byte, so the last two are set and replaced
// without a Read in between; each costs a clock read and a runtime timer
// update (~2-3% of a node's CPU pinned to one core, BENCHMARKS.md "Pinned to
// one core"). A deadline only acts on Reads, and is an absolute time, so
// applying the latest one when the next Read starts — one already past makes
// that Read fail at once — is exactly what setting each at once does. A
// deadline set while a Read is blocked applies at once, so it still
// interrupts that Read.
type guardedConn struct {
	net.Conn
	g      *connGuard
	addr   netip.Addr
	closed atomic.Bool

	mu      sync.Mutex
	rd      time.Time // the read deadline set last, when rdSet
	rdSet   bool      // rd is not yet the socket's
	reading bool      // a Read is in progress
}

// Read applies the read deadline set last, then reads.
func (c *guardedConn) Read(p []byte) (int, error) {
	if err := c.startRead(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	c.endRead()
	return n, err
}

// startRead gives the socket the read deadline set last, if it does not
// have it yet, and marks a Read in progress.
func (c *guardedConn) startRead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rdSet {
		c.rdSet = false
		if err := c.Conn.SetReadDeadline(c.rd); err != nil {
			return err
		}
	}
	c.reading = true
	return nil
}

func (c *guardedConn) endRead() {
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
}

// SetReadDeadline records t for the next Read, or applies it at once to a
// Read in progress.
func (c *guardedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading {
		c.rdSet = false
		return c.Conn.SetReadDeadline(t)
	}
	c.rd, c.rdSet = t, true
	return nil
}

// SetDeadline sets both deadlines at once, replacing a read deadline that
// waits for its Read.
func (c *guardedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdSet = false
	return c.Conn.SetDeadline(t)
}

func (c *guardedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.g.release(c.addr)
	}
	return c.Conn.Close()
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}
