// Command bigbodies measures what a node keeps after a burst of large
// scoring requests (issue 12): it samples the node's heap and resident
// memory from /metrics while idle, sends -conns connections of -rows-row
// demo requests (26,000 rows ≈ 4 MB of JSON) for -duration after a warm-up
// of small requests, then samples
// every -every for -watch, and prints one line per sample. Loopback only:
// it refuses any address but 127.0.0.0/8 and ::1.
//
//	go run ./scripts/bigbodies -node 127.0.0.1:8080 -admin 127.0.0.1:8081
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/internal/oiptest"
)

func main() {
	node := flag.String("node", "127.0.0.1:8080", "scoring address")
	admin := flag.String("admin", "127.0.0.1:8081", "admin address (/metrics)")
	model := flag.String("model", "fraud", "demo model name")
	conns := flag.Int("conns", 64, "connections")
	rows := flag.Int("rows", 26000, "rows per request (26,000 ≈ 4 MB of JSON)")
	dur := flag.Duration("duration", 10*time.Second, "load duration")
	watch := flag.Duration("watch", 30*time.Second, "how long to sample after the load")
	every := flag.Duration("every", 5*time.Second, "sampling interval after the load")
	warmup := flag.Int("warmup", 200, "100-row requests sent before the first sample, so the node is in its serving state (drift reference bootstrapped, pools warm)")
	flag.Parse()
	for _, a := range []string{*node, *admin} {
		if !loopback(a) {
			fmt.Fprintf(os.Stderr, "bigbodies: %s is not a loopback address\n", a)
			os.Exit(2)
		}
	}
	url := "http://" + *node + "/v2/models/" + *model + "/infer"
	small := oiptest.GoodRequest(100)
	for i := 0; i < *warmup; i++ {
		resp, err := http.Post(url, "application/json", bytes.NewReader(small))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bigbodies: warm-up:", err)
			os.Exit(1)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	time.Sleep(*every) // let the warm-up's garbage be what an idle node holds
	body := oiptest.GoodRequest(*rows)
	fmt.Printf("body %d bytes, %d connections, %s of load, then %s idle\n", len(body), *conns, *dur, *watch)
	fmt.Printf("%-12s %8s %16s %16s\n", "phase", "t_s", "heap_inuse_MB", "rss_MB")
	sample := func(phase string, t time.Duration) {
		heap, rss := memory(*admin)
		fmt.Printf("%-12s %8.1f %16.1f %16.1f\n", phase, t.Seconds(), heap/1e6, rss/1e6)
	}
	sample("before", 0)

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: *conns, MaxIdleConnsPerHost: *conns}, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var ok, bad atomic.Int64
	codes := sync.Map{}
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						bad.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					bad.Add(1)
					v, _ := codes.LoadOrStore(resp.StatusCode, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				}
			}
		}()
	}
	go func() {
		for t := range time.Tick(*every) {
			if ctx.Err() != nil {
				return
			}
			sample("load", t.Sub(start))
		}
	}()
	wg.Wait()
	client.CloseIdleConnections()
	fmt.Printf("load: %d answered 200, %d failed in %s", ok.Load(), bad.Load(), time.Since(start).Round(time.Millisecond))
	codes.Range(func(k, v any) bool { fmt.Printf(", %d: %d", k, v.(*atomic.Int64).Load()); return true })
	fmt.Println()
	end := time.Now()
	sample("after", 0)
	for t := *every; t <= *watch; t += *every {
		time.Sleep(time.Until(end.Add(t)))
		sample("after", t)
	}
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// memory reads go_memstats_heap_inuse_bytes and
// process_resident_memory_bytes from the node's /metrics.
func memory(admin string) (heap, rss float64) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bigbodies:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "go_memstats_heap_inuse_bytes":
			heap, _ = strconv.ParseFloat(v, 64)
		case "process_resident_memory_bytes":
			rss, _ = strconv.ParseFloat(v, 64)
		}
	}
	return heap, rss
}
