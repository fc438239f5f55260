package gateway

import (
	"bytes"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/gateway/oip"
	"github.com/modelgate/modelgate/predlog"
	"github.com/modelgate/modelgate/routing"
	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/shadow"
)

// inferState is everything one scoring request needs, pooled so that the
// steady state allocates nothing.
type inferState struct {
	dec    oip.Decoder
	req    oip.InferRequest
	call   *runtime.Call
	resp   oip.Response
	params [1]oip.Parameter
	out    []byte
	id     []byte
	rec    predlog.Record // points into call's tensors; Append copies
	row    []float32      // drift: a row converted to float32
	scores []float64      // the answer's scores, for the version's histogram
	// mreq and targets are the shadow copy's request (see Server.mirror).
	mreq    shadow.Request
	targets []shadow.Target
}

func newInferState() *inferState {
	st := &inferState{call: runtime.NewCall()}
	st.params[0].Key = "request_id"
	return st
}

// maxPooledOut keeps one huge response from pinning its buffer in the pool.
const maxPooledOut = 1 << 20

// maxPooledBody is the largest request body whose buffer fasthttp may keep
// with its pooled request for the next one; a larger one is left to the
// garbage collector once answered.
const maxPooledBody = 1 << 20

func (s *Server) releaseState(st *inferState) {
	st.dec.Trim()
	st.req.Inputs = st.call.Inputs
	st.call.Inputs = nil
	st.req.Reset()
	st.call.Reset()
	st.resp = oip.Response{}
	clear(st.rec.Inputs)
	clear(st.rec.Outputs)
	st.rec.Inputs, st.rec.Outputs, st.rec.RequestID = st.rec.Inputs[:0], st.rec.Outputs[:0], ""
	if cap(st.out) > maxPooledOut {
		st.out = nil
	}
	s.states.Put(st)
}

var (
	pathV2       = []byte("/v2")
	pathLive     = []byte("/v2/health/live")
	pathReady    = []byte("/v2/health/ready")
	prefixModels = []byte("/v2/models/")
	segVersions  = []byte("versions")
	segReady     = []byte("ready")
	segInfer     = []byte("infer")
	headerIHCL   = []byte("Inference-Header-Content-Length")
)

// HandleScoring is the scoring listener's handler: the Open Inference
// Protocol REST API. It is exported so benchmarks can drive it in process.
func (s *Server) HandleScoring(ctx *fasthttp.RequestCtx) {
	// Whatever the route, a large body need not stay pooled with
	// fasthttp's request for the connection's next one.
	defer ctx.Request.ReleaseBody(maxPooledBody)
	path := ctx.Path()
	switch {
	case bytes.Equal(path, pathLive):
		if onlyGET(ctx) {
			writeJSON(ctx, fasthttp.StatusOK, `{"live":true}`)
		}
		return
	case bytes.Equal(path, pathReady):
		if onlyGET(ctx) {
			if s.Ready() {
				writeJSON(ctx, fasthttp.StatusOK, `{"ready":true}`)
			} else {
				writeJSON(ctx, fasthttp.StatusServiceUnavailable, `{"ready":false}`)
			}
		}
		return
	case bytes.Equal(path, pathV2):
		if onlyGET(ctx) {
			s.serverMetadata(ctx)
		}
		return
	case !bytes.HasPrefix(path, prefixModels):
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(path)+" (the API is under /v2)")
		return
	}
	// /v2/models/{m}[/versions/{v}][/ready|/infer]
	rest := path[len(prefixModels):]
	model, rest := cut(rest)
	var version, action []byte
	seg, rest := cut(rest)
	if bytes.Equal(seg, segVersions) {
		version, rest = cut(rest)
		if len(version) == 0 {
			writeError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(path)+" (a version is missing after /versions/)")
			return
		}
		seg, rest = cut(rest)
	}
	action = seg
	if len(model) == 0 || len(rest) > 0 || (len(action) > 0 && !bytes.Equal(action, segReady) && !bytes.Equal(action, segInfer)) {
		writeError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(path))
		return
	}
	switch {
	case bytes.Equal(action, segInfer):
		if !ctx.IsPost() {
			ctx.Response.Header.Set("Allow", "POST")
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "use POST for "+string(path))
			return
		}
		s.infer(ctx, model, version)
	case bytes.Equal(action, segReady):
		if onlyGET(ctx) {
			s.modelReady(ctx, model, version)
		}
	default:
		if onlyGET(ctx) {
			s.modelMetadata(ctx, model, version)
		}
	}
}

// cut splits the first path segment off p.
func cut(p []byte) (seg, rest []byte) {
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, nil
}

func onlyGET(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsGet() || ctx.IsHead() {
		return true
	}
	ctx.Response.Header.Set("Allow", "GET, HEAD")
	writeError(ctx, fasthttp.StatusMethodNotAllowed, "use GET for "+string(ctx.Path()))
	return false
}

// infer serves POST /v2/models/{m}[/versions/{v}]/infer.
func (s *Server) infer(ctx *fasthttp.RequestCtx, model, version []byte) {
	start := time.Now()
	if s.cfg.ScoreAuth {
		if _, code, msg := s.auth.Authorize(ctx.Request.Header.Peek("Authorization"), ScopeScore); code != 0 {
			s.fail(ctx, "", code, msg)
			return
		}
	}
	r := s.Catalog.table().Model(string(model))
	if r == nil {
		s.fail(ctx, "", fasthttp.StatusNotFound, "model "+strconv.Quote(string(model))+" not found")
		return
	}
	jsonLen := -1
	if h := ctx.Request.Header.PeekBytes(headerIHCL); len(h) > 0 {
		n, err := strconv.Atoi(b2s(h))
		if err != nil || n < 0 {
			s.fail(ctx, r.Name, fasthttp.StatusBadRequest, "Inference-Header-Content-Length is "+string(h)+": it must be the JSON header's length in bytes")
			return
		}
		jsonLen = n
	}
	st := s.states.Get().(*inferState)
	defer s.releaseState(st)
	if err := st.dec.Decode(ctx.PostBody(), jsonLen, &st.req); err != nil {
		s.failErr(ctx, r.Name, err)
		return
	}
	if r.LogMode == routing.LogDurable && s.predlog != nil {
		// The inputs alone decide it: a record that can never be logged
		// must not be run and then answered with a retryable 503.
		if n, limit := tensorBytes(st.req.Inputs), s.predlog.MaxRecordBytes(); n > limit {
			s.fail(ctx, r.Name, fasthttp.StatusRequestEntityTooLarge, "model "+strconv.Quote(r.Name)+" logs every prediction durably, and this request's inputs take "+
				itoa(n)+" bytes, more than the prediction log's record limit of "+itoa(limit)+" bytes: it could never be logged, so it is not run. Send fewer rows per request")
			return
		}
	}
	id := st.req.ID
	if len(id) == 0 {
		id = s.newID(st.id[:0])
		st.id = id
	}
	key := st.req.RoutingKey
	if len(key) == 0 {
		key = id
	}
	r, v, code, msg := s.pick(r, version, key)
	if v == nil {
		name := "" // a model removed meanwhile is not a label to keep
		if r != nil {
			name = r.Name
		}
		s.fail(ctx, name, code, msg)
		return
	}
	slot := v.Slot
	if h := testHookPicked.Load(); h != nil {
		(*h)(slot)
	}
	if err := oip.CheckOutputs(&st.req, slot.Model.Signature()); err != nil {
		slot.Release()
		s.failErr(ctx, r.Name, err)
		return
	}
	st.call.Inputs = st.req.Inputs
	err := slot.Model.Infer(st.call)
	slot.Release()
	if err != nil {
		if !runtime.IsCallerError(err) {
			v.Attach.stats.failures.Inc()
		}
		s.failErr(ctx, r.Name, err)
		return
	}
	if d := v.Attach.drift.Load(); d != nil {
		// Hard constraints are checked after the run, when the runtime has
		// validated every tensor's type and shape, and before anything is
		// answered, observed or logged. Off (nil), this is the one load.
		if rr := d.rules.Load(); rr != nil {
			if f, ok := rr.check(d, st.call, &st.row); !ok {
				s.refuseRow(ctx, r.Name, slot.Version, f)
				return
			}
		}
		d.observe(st.call, start, &st.row)
	}
	st.params[0].Bytes = id
	st.resp = oip.Response{Model: r.Name, Version: slot.Version, ID: id, Parameters: st.params[:], Outputs: st.call.Outputs}
	var n int
	st.out, n = oip.AppendInferResponse(st.out[:0], &st.resp, &st.req)
	st.resp.Outputs, st.params[0].Bytes = nil, nil
	if n < len(st.out) {
		ctx.Response.Header.SetContentLength(len(st.out))
		var nb [20]byte
		ctx.Response.Header.SetBytesKV(headerIHCL, strconv.AppendInt(nb[:0], int64(n), 10))
		ctx.SetContentTypeBytes(contentOctet)
	} else {
		ctx.SetContentTypeBytes(contentJSON)
	}
	if len(st.out) <= maxPooledOut {
		ctx.SetBody(st.out)
	} else {
		// A copy of its own, not fasthttp's pooled buffer: a huge response
		// would otherwise stay pinned with the pooled response.
		ctx.Response.SetBodyRaw(append([]byte(nil), st.out...))
	}
	// One clock read serves the record and the latency metric. The
	// response is only sent once the handler returns, so a durable record
	// that cannot be logged still replaces it.
	elapsed := time.Since(start)
	if s.predlog != nil && r.LogMode != routing.LogOff {
		role := predlog.RoleChampion
		if v == r.Canary {
			role = predlog.RoleCanary
		}
		s.fillRecord(st, r.Name, slot.Version, role, id, start, elapsed)
		if r.LogMode == routing.LogDurable {
			if err := s.predlog.AppendDurable(&st.rec); err != nil {
				ctx.Response.Reset()
				if errors.Is(err, predlog.ErrTooLarge) {
					// Its outputs made it too large: no retry can succeed.
					s.fail(ctx, r.Name, fasthttp.StatusRequestEntityTooLarge, "model "+strconv.Quote(r.Name)+" logs every prediction durably, and this prediction cannot be logged, so it is not answered: "+err.Error()+". Send fewer rows per request")
					return
				}
				s.fail(ctx, r.Name, fasthttp.StatusServiceUnavailable, "the prediction could not be logged durably, so it is not answered: "+err.Error())
				return
			}
		} else {
			// A drop (ring full, or a record over the log's limit) is
			// counted by the log and exported as a metric; it never
			// blocks or fails the answer.
			_ = s.predlog.Append(&st.rec)
		}
	}
	v.Attach.stats.requests.Inc()
	v.Attach.stats.latency.Update(elapsed.Seconds())
	st.scores = v.Attach.stats.perf.record(start, elapsed, st.call.Outputs, st.scores)
	// Only what the champion answered unpinned is mirrored: the shadows
	// are compared with the champion.
	if len(r.Shadows) > 0 && v == r.Champion && len(version) == 0 {
		s.mirror(st, r, v, id, start, elapsed)
	}
}

// fillRecord points the pooled prediction record at this call's tensors.
func (s *Server) fillRecord(st *inferState, model, version string, role predlog.Role, id []byte, start time.Time, elapsed time.Duration) {
	r := &st.rec
	r.RequestID, r.Model, r.Version, r.Role = b2s(id), model, version, role
	r.Time, r.Node, r.Latency = start.UnixNano(), s.cfg.Node, int64(elapsed)
	r.Inputs, r.Outputs = appendTensors(r.Inputs[:0], st.call.Inputs), appendTensors(r.Outputs[:0], st.call.Outputs)
}

// tensorBytes is the size of ts's data as the prediction log stores it.
func tensorBytes(ts []runtime.Tensor) int {
	n := 0
	for i := range ts {
		n += len(ts[i].Data)
		for _, s := range ts[i].Strings {
			n += len(s) + 1
		}
	}
	return n
}

func appendTensors(dst []predlog.Tensor, ts []runtime.Tensor) []predlog.Tensor {
	for i := range ts {
		t := &ts[i]
		dst = append(dst, predlog.Tensor{Name: t.Name, DataType: t.DataType.String(), Shape: t.Shape, Data: t.Data, Strings: t.Strings})
	}
	return dst
}

// pick chooses the version that answers and takes a reference on its
// slot: the version the path names, else the canary for its share of
// routing keys, else the champion. A slot retired between loading the table
// and Acquire means a swap just happened: the fresh table has its
// successor.
func (s *Server) pick(r *route, version, key []byte) (*route, *routed, int, string) {
	name := r.Name
	for {
		var v *routed
		switch {
		case len(version) > 0:
			if v = r.Version(string(version)); v == nil {
				return r, nil, fasthttp.StatusNotFound, "model " + strconv.Quote(name) + " has no version " + strconv.Quote(string(version)) + " on this node"
			}
		default:
			if v = r.Pick(key); v == nil {
				return r, nil, fasthttp.StatusServiceUnavailable, "model " + strconv.Quote(name) + " has no ready version"
			}
		}
		if v.Slot.Acquire() {
			return r, v, 0, ""
		}
		if r = s.Catalog.table().Model(name); r == nil {
			return nil, nil, fasthttp.StatusNotFound, "model " + strconv.Quote(name) + " not found"
		}
	}
}

// newID appends a request id unique across nodes and restarts: a random
// per-process prefix and a sequence number.
func (s *Server) newID(dst []byte) []byte {
	dst = append(dst, s.idPrefix[:]...)
	return strconv.AppendUint(dst, s.idSeq.Add(1), 16)
}

// failErr maps an error to its status: the caller's mistakes are 400 (or
// what the decoder says), overload and swaps 503, anything else 500.
func (s *Server) failErr(ctx *fasthttp.RequestCtx, model string, err error) {
	var oe *oip.Error
	code := fasthttp.StatusInternalServerError
	switch {
	case errors.As(err, &oe):
		code = oe.Status
	case runtime.IsCallerError(err):
		code = fasthttp.StatusBadRequest
	case errors.Is(err, runtime.ErrQueueFull), errors.Is(err, runtime.ErrTimeout), errors.Is(err, runtime.ErrClosed):
		code = fasthttp.StatusServiceUnavailable
		ctx.Response.Header.Set("Retry-After", "1")
	}
	s.fail(ctx, model, code, err.Error())
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, model string, code int, msg string) {
	s.Metrics.errorCounter(model, code).Inc()
	writeError(ctx, code, msg)
}

var (
	contentJSON  = []byte("application/json")
	contentOctet = []byte("application/octet-stream")
)

func writeError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(oip.AppendError(nil, msg))
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, body string) {
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBodyString(body)
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func itoa(n int) string { return strconv.Itoa(n) }
