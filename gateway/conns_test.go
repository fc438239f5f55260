package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/oiptest"
)

// guard is how long a test waits for what should be immediate: only a hang
// exceeds it.
const guard = 30 * time.Second

// slowHeaders opens a connection from local (a loopback address) and sends
// the start of a request's headers, never their end: a slowloris client.
func slowHeaders(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: guard}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// readAnswer reads the HTTP answer on c and its {"error"} message.
func readAnswer(t *testing.T, c net.Conn) (int, http.Header, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Fatalf("%d answer is not JSON {\"error\":…}: %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp.StatusCode, resp.Header, e.Error
}

// metric returns the value of one line of the node's /metrics.
func metric(t *testing.T, srv *gateway.Server, name string) string {
	t.Helper()
	_, b := get(t, srv.AdminAddr(), "/metrics")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// TestSlowHeaderFloodCappedPerAddress: one address opening connections
// that never finish their headers holds at most MaxConnsPerIP of them;
// past that it is answered 429 (JSON, counted), and a client from another
// address is still served. Without the cap, the flood takes every slot of
// Concurrency and the other client gets 503.
func TestSlowHeaderFloodCappedPerAddress(t *testing.T) {
	srv := startServer(t, gateway.Config{Concurrency: 8, MaxConnsPerIP: 4, HeaderTimeout: time.Minute})
	// The attacker is 127.0.0.2 (loopback, like every address here); the
	// honest client 127.0.0.1.
	for i := 0; i < 4; i++ {
		slowHeaders(t, "127.0.0.2", srv.Addr())
	}
	for i := 0; i < 4; i++ {
		c := slowHeaders(t, "127.0.0.2", srv.Addr())
		code, h, msg := readAnswer(t, c)
		if code != http.StatusTooManyRequests || !strings.Contains(msg, "--max-conns-per-ip") || h.Get("Retry-After") == "" {
			t.Fatalf("connection %d over the per-address cap: %d %q (Retry-After %q), want 429 naming --max-conns-per-ip", 5+i, code, msg, h.Get("Retry-After"))
		}
	}
	if code, b := get(t, srv.Addr(), "/v2/health/live"); code != http.StatusOK {
		t.Fatalf("another address during the flood: %d %s, want 200", code, b)
	}
	if got := metric(t, srv, `modelgate_request_errors_total{model="",code="429"}`); got != "4" {
		t.Errorf("429s counted: %q, want 4", got)
	}
}

// TestOverConcurrencyIsJSONAndCounted: past Concurrency a connection gets
// a JSON 503 with Retry-After, counted with the other 503s — fasthttp's
// own was text/plain and counted nowhere.
func TestOverConcurrencyIsJSONAndCounted(t *testing.T) {
	srv := startServer(t, gateway.Config{Concurrency: 2, MaxConnsPerIP: -1, HeaderTimeout: time.Minute})
	slowHeaders(t, "127.0.0.1", srv.Addr())
	slowHeaders(t, "127.0.0.1", srv.Addr())
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code, h, msg := readAnswer(t, c)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "--concurrency") || h.Get("Retry-After") == "" {
		t.Fatalf("over --concurrency: %d %q, want a JSON 503 naming --concurrency with Retry-After", code, msg)
	}
	if got := metric(t, srv, `modelgate_request_errors_total{model="",code="503"}`); got != "1" {
		t.Errorf("503s counted: %q, want 1", got)
	}
}

// TestHeaderTimeoutSeparateFromBody: headers that do not arrive within
// HeaderTimeout end the connection (408) long before the body's
// ReadTimeout, while a body slower than HeaderTimeout is still read.
func TestHeaderTimeoutSeparateFromBody(t *testing.T) {
	const header = 300 * time.Millisecond
	srv := startDemo(t, gateway.Config{HeaderTimeout: header, ReadTimeout: 10 * time.Minute})
	c := slowHeaders(t, "127.0.0.1", srv.Addr())
	start := time.Now()
	code, _, msg := readAnswer(t, c)
	if code != http.StatusRequestTimeout {
		t.Fatalf("headers never finished: %d %q, want 408", code, msg)
	}
	if waited := time.Since(start); waited >= guard {
		t.Fatalf("the header deadline took %s: the body's 10-minute timeout applied to the headers", waited)
	}

	// Headers at once, then the body in two parts with a pause longer
	// than HeaderTimeout: the body has its own deadline.
	body := oiptest.GoodRequest(1)
	d, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	head := "POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(d, head+string(body[:10])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * header)
	if _, err := d.Write(body[10:]); err != nil {
		t.Fatalf("the server gave up on a body slower than the header timeout: %v", err)
	}
	_ = d.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(bufio.NewReader(d), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a body slower than the header timeout: %d %s, want 200", resp.StatusCode, b)
	}
}

// TestBodyTimeoutAppliesAfterHeaders: a body that stops arriving gets 408
// after ReadTimeout, not after the far longer HeaderTimeout: the body's
// deadline reaches the socket when the body is read (guardedConn defers
// read deadlines to the Read that needs them).
func TestBodyTimeoutAppliesAfterHeaders(t *testing.T) {
	srv := startDemo(t, gateway.Config{HeaderTimeout: 10 * time.Minute, ReadTimeout: 300 * time.Millisecond, IdleTimeout: 10 * time.Minute})
	body := oiptest.GoodRequest(1)
	d, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	head := "POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(d, head+string(body[:10])); err != nil {
		t.Fatal(err)
	}
	if code, _, msg := readAnswer(t, d); code != http.StatusRequestTimeout {
		t.Fatalf("a stalled body: %d %q, want 408", code, msg)
	}
}

// TestIdleTimeoutClosesKeepAlive: a keep-alive connection left idle after
// an answer is closed after IdleTimeout, not after the longer header or
// body timeouts set during the request before.
func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	srv := startDemo(t, gateway.Config{HeaderTimeout: 10 * time.Minute, ReadTimeout: 10 * time.Minute, IdleTimeout: 300 * time.Millisecond})
	d, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := io.WriteString(d, "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = d.SetReadDeadline(time.Now().Add(guard))
	br := bufio.NewReader(d)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("live: %d, want 200", resp.StatusCode)
	}
	// Idle now: the server closes its end, and the read sees EOF long
	// before the guard.
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle keep-alive connection: read %d bytes, err %v; want EOF from the server's close", n, err)
	}
}
