package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testmodels"
	"github.com/modelgate/modelgate/runtime"
)

// hangWait bounds waits that only a bug can make long.
const hangWait = time.Minute

// parkRequests makes the scoring path stop every request on slot once it
// holds its reference: it sends the slot on the returned channel and waits
// until release is closed. Requests on other slots pass.
func parkRequests(t *testing.T, slot *runtime.Slot) (parked <-chan *runtime.Slot, release chan struct{}) {
	ch := make(chan *runtime.Slot, 16)
	release = make(chan struct{})
	gateway.SetTestHookPicked(func(s *runtime.Slot) {
		if s != slot {
			return
		}
		ch <- s
		<-release
	})
	t.Cleanup(func() {
		gateway.SetTestHookPicked(nil)
		select {
		case <-release:
		default:
			close(release)
		}
	})
	return ch, release
}

func drained(s *runtime.Slot) bool {
	select {
	case <-s.Drained():
		return true
	default:
		return false
	}
}

// TestRetiredVersionDrainsItsRequest holds a real HTTP request inside
// version 1 (after it took its slot reference, before its ORT Run), then
// takes the version away: removed from routing, or replaced by a new slot
// of the same version. While the request is in flight the old slot must
// not drain and its sessions must stay alive; the request then answers 200
// from version 1, and only after that are the sessions freed.
func TestRetiredVersionDrainsItsRequest(t *testing.T) {
	onnx := testmodels.Read(t, "example_dynamic_axes.onnx")
	cfg := runtime.Config{Sessions: 1}
	body := []byte(`{"inputs":[{"name":"input_vectors","shape":[1,10],"datatype":"FP32","data":[1,2,3,4,5,6,7,8,9,10]}]}`)
	for _, how := range []string{"remove", "replace"} {
		t.Run(how, func(t *testing.T) {
			before := runtime.SessionsAlive()
			srv := startServer(t, gateway.Config{})
			v1 := serveModel(t, srv, "dyn", "1", onnx, cfg)
			// The answer of version 1 when nothing happens to it.
			code, b := post(t, srv, "/v2/models/dyn/versions/1/infer", body)
			if code != http.StatusOK {
				t.Fatalf("before the swap: %d %s", code, b)
			}
			want := decodeResponse(t, b)

			parked, release := parkRequests(t, v1)
			type answer struct {
				code int
				body []byte
				err  error
			}
			done := make(chan answer, 1)
			go func() {
				resp, err := client.Post("http://"+srv.Addr()+"/v2/models/dyn/versions/1/infer", "application/json", bytes.NewReader(body))
				if err != nil {
					done <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				done <- answer{resp.StatusCode, b, err}
			}()
			var held *runtime.Slot
			select {
			case held = <-parked:
			case <-time.After(hangWait):
				t.Fatal("the request never reached version 1")
			}
			if held != v1 {
				t.Fatalf("the request holds slot %p, want version 1's %p", held, v1)
			}

			switch how {
			case "remove":
				serveModel(t, srv, "dyn", "2", onnx, cfg)
				if !srv.Catalog.Remove("dyn", "1") {
					t.Fatal("version 1 was not loaded")
				}
			case "replace":
				serveModel(t, srv, "dyn", "1", onnx, cfg) // a new slot, same version
			}
			if drained(v1) {
				t.Fatal("version 1 drained with a request in flight")
			}
			if got := runtime.SessionsAlive() - before; got != 2 {
				t.Fatalf("%d sessions alive with a request in flight on the retired version, want 2 (its and the new one's)", got)
			}
			if n := v1.InFlight(); n != 1 {
				t.Fatalf("retired version 1 has %d calls in flight, want 1", n)
			}
			// Routing has moved on: new unversioned calls go to the new slot.
			code, b = post(t, srv, "/v2/models/dyn/infer", body)
			if code != http.StatusOK {
				t.Fatalf("unversioned call after the swap: %d %s", code, b)
			}

			close(release)
			var a answer
			select {
			case a = <-done:
			case <-time.After(hangWait):
				t.Fatal("the held request never answered")
			}
			if a.err != nil {
				t.Fatalf("the request in flight during the %s: %v", how, a.err)
			}
			if a.code != http.StatusOK {
				t.Fatalf("the request in flight during the %s answered %d: %s", how, a.code, a.body)
			}
			got := decodeResponse(t, a.body)
			if got.ModelVersion != "1" || fmt.Sprint(got.Outputs) != fmt.Sprint(want.Outputs) {
				t.Fatalf("the request in flight answered %s, want version 1's %s", a.body, b)
			}
			select {
			case <-v1.Drained():
			case <-time.After(hangWait):
				t.Fatal("version 1 never drained after its last request")
			}
			if got := runtime.SessionsAlive() - before; got != 1 {
				t.Fatalf("%d sessions alive after version 1 drained, want 1 (the new slot's)", got)
			}
		})
	}
}
