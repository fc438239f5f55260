package gateway

import (
	"net"
	"testing"
	"time"
)

// BenchmarkConnRequestDeadlines is the deadline work of one keep-alive
// request as fasthttp does it with the node's timeouts: the idle deadline,
// a read, the header and body deadlines, the write deadline. "socket"
// gives every deadline to the socket at once (as the connection guardedConn
// wraps would); "guarded" is guardedConn, which gives the socket only the
// deadline the read needs. The read itself is left out (startRead/endRead
// only), so that the syscall's noise does not hide the difference.
func BenchmarkConnRequestDeadlines(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := newConnGuard(ln, 8, 8, NewMetrics())
	defer g.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	nc, err := g.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	gc := nc.(*guardedConn)
	b.Run("socket", func(b *testing.B) {
		c := gc.Conn
		b.ReportAllocs()
		for b.Loop() {
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		}
	})
	b.Run("guarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = gc.SetReadDeadline(time.Now().Add(time.Minute))
			if err := gc.startRead(); err != nil {
				b.Fatal(err)
			}
			gc.endRead()
			_ = gc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_ = gc.SetReadDeadline(time.Now().Add(10 * time.Second))
			_ = gc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		}
	})
}
