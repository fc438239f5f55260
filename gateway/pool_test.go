package gateway

import (
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/internal/oiptest"
)

// retained is what a pooled inferState keeps between requests.
func (st *inferState) retained() int {
	n := st.dec.Retained() + cap(st.out) + cap(st.id) + cap(st.req.ID) + cap(st.req.RoutingKey)
	for _, in := range st.req.Inputs[:cap(st.req.Inputs)] {
		n += cap(in.Data)
	}
	return n
}

// TestPooledStateBounded: a scoring request near the 4 MiB body limit
// leaves nothing large in the pooled state (the decoded features, the
// response buffer), nor in fasthttp's pooled request (its body buffer);
// a demo-sized request keeps its buffers, which is what makes the steady
// state allocation-free. 64 connections of 4 MB bodies left 568 MB of heap
// in use before.
func TestPooledStateBounded(t *testing.T) {
	s := New(Config{})
	big := oiptest.GoodRequest(24000) // ~3.8 MB of JSON, 2.9 MB of features
	small := oiptest.GoodRequest(100)
	f := func(body []byte) (stateKept, bodyKept int) {
		t.Helper()
		st := s.states.Get().(*inferState)
		if err := st.dec.Decode(body, -1, &st.req); err != nil {
			t.Fatal(err)
		}
		st.out = append(st.out[:0], body...) // a response as large as the request
		s.releaseState(st)
		// The scoring handler on a real fasthttp request: the model is
		// unknown (404) after the body is read, which is all this needs.
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v2/models/absent/infer")
		ctx.Request.SetBody(body)
		s.HandleScoring(&ctx)
		return st.retained(), cap(ctx.Request.Body())
	}
	if kept, body := f(big); kept > 1<<20 || body != 0 {
		t.Errorf("after a %d-byte request the pooled state keeps %d bytes and fasthttp's request %d; want at most 1 MiB and none", len(big), kept, body)
	}
	if kept, body := f(small); kept < len(small) || body < len(small) {
		t.Errorf("after a %d-byte request the pooled state keeps %d bytes and fasthttp's request %d: a demo-sized request should keep its buffers", len(small), kept, body)
	}
}
