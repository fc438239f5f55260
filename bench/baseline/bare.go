package baseline

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unsafe"

	"github.com/valyala/fasthttp"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/gateway/oip"
	"github.com/modelgate/modelgate/runtime"
)

// bareWorker is one AdvancedSession bound to its own preallocated tensors.
type bareWorker struct {
	sess     *ort.AdvancedSession
	in, out  *ort.Tensor[float32]
	inBytes  []byte // in's data, as bytes
	outBytes []byte // out's data, as bytes
}

// bareState is what one request needs, pooled.
type bareState struct {
	dec  oip.Decoder
	req  oip.InferRequest
	out  [1]runtime.Tensor
	buf  []byte
	id   []byte
	resp oip.Response
}

// bareHandler is the Bare baseline's request handler.
type bareHandler struct {
	shape
	workers chan *bareWorker // idle workers
	all     []*bareWorker
	states  sync.Pool
	ids     *ids
	outDims [2]int64
}

func newBareHandler(cfg Config, sh shape) (*bareHandler, error) {
	h := &bareHandler{shape: sh, workers: make(chan *bareWorker, cfg.Sessions), ids: newIDs()}
	h.outDims = [2]int64{1, int64(sh.width)}
	h.states.New = func() any { return new(bareState) }
	opts, err := sessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	for range cfg.Sessions {
		w, err := newBareWorker(cfg.Model, sh, opts)
		if err != nil {
			_ = h.destroy()
			return nil, err
		}
		h.all = append(h.all, w)
		h.workers <- w
	}
	return h, nil
}

func newBareWorker(model []byte, sh shape, opts *ort.SessionOptions) (*bareWorker, error) {
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(1, int64(sh.features)))
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, int64(sh.width)))
	if err != nil {
		in.Destroy()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	sess, err := ort.NewAdvancedSessionWithONNXData(model, []string{sh.input}, []string{sh.output},
		[]ort.Value{in}, []ort.Value{out}, opts)
	if err != nil {
		in.Destroy()
		out.Destroy()
		return nil, fmt.Errorf("baseline: cannot create an ORT session: %w", err)
	}
	return &bareWorker{sess: sess, in: in, out: out, inBytes: f32bytes(in.GetData()), outBytes: f32bytes(out.GetData())}, nil
}

// f32bytes views v as its bytes. ONNX Runtime's tensors are in host order,
// and OIP tensors (runtime.Tensor.Data) are little-endian: the copy is
// exact on every little-endian host, which is every host ORT ships for.
func f32bytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// destroy frees every session and tensor; no request may be in flight.
func (h *bareHandler) destroy() error {
	var errs []error
	for _, w := range h.all {
		errs = append(errs, w.sess.Destroy(), w.in.Destroy(), w.out.Destroy())
	}
	h.all = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

var (
	pathReady    = []byte("/v2/health/ready")
	pathLive     = []byte("/v2/health/live")
	prefixModels = []byte("/v2/models/")
	suffixInfer  = []byte("/infer")
	headerIHCL   = []byte(oip.HeaderInferenceContentLength)
	contentJSON  = []byte("application/json")
	contentOctet = []byte("application/octet-stream")
)

// handle serves the Bare baseline's routes.
func (h *bareHandler) handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch {
	case bytes.Equal(path, pathReady), bytes.Equal(path, pathLive):
		if !ctx.IsGet() && !ctx.IsHead() {
			bareError(ctx, fasthttp.StatusMethodNotAllowed, "use GET for "+string(path))
			return
		}
		ctx.SetContentTypeBytes(contentJSON)
		if bytes.Equal(path, pathReady) {
			ctx.SetBodyString(`{"ready":true}`)
		} else {
			ctx.SetBodyString(`{"live":true}`)
		}
		return
	case !bytes.HasPrefix(path, prefixModels) || !bytes.HasSuffix(path, suffixInfer) || len(path) <= len(prefixModels)+len(suffixInfer):
		bareError(ctx, fasthttp.StatusNotFound, "no such endpoint: "+string(path)+" (a baseline serves POST /v2/models/{model}/infer)")
		return
	case !ctx.IsPost():
		bareError(ctx, fasthttp.StatusMethodNotAllowed, "use POST for "+string(path))
		return
	}
	model := path[len(prefixModels) : len(path)-len(suffixInfer)]
	if i := bytes.IndexByte(model, '/'); i >= 0 {
		model = model[:i] // /v2/models/{m}/versions/{v}/infer
	}
	h.infer(ctx, model)
}

// infer answers one batch-1 inference request.
func (h *bareHandler) infer(ctx *fasthttp.RequestCtx, model []byte) {
	jsonLen := -1
	if v := ctx.Request.Header.PeekBytes(headerIHCL); len(v) > 0 {
		n, err := oip.ParseJSONLength(v)
		if err != nil {
			bareError(ctx, fasthttp.StatusBadRequest, err.Error())
			return
		}
		jsonLen = n
	}
	st := h.states.Get().(*bareState)
	defer h.release(st)
	if err := st.dec.Decode(ctx.PostBody(), jsonLen, &st.req); err != nil {
		code := fasthttp.StatusBadRequest
		var oe *oip.Error
		if errors.As(err, &oe) {
			code = oe.Status
		}
		bareError(ctx, code, err.Error())
		return
	}
	if msg := h.check(&st.req); msg != "" {
		bareError(ctx, fasthttp.StatusBadRequest, msg)
		return
	}
	w := <-h.workers
	copy(w.inBytes, st.req.Inputs[0].Data)
	err := w.sess.Run()
	o := &st.out[0]
	o.Name, o.DataType = h.output, runtime.FP32
	o.Shape = append(o.Shape[:0], h.outDims[:]...)
	o.Data = append(o.Data[:0], w.outBytes...)
	h.workers <- w
	if err != nil {
		bareError(ctx, fasthttp.StatusInternalServerError, "baseline: ONNX Runtime: "+err.Error())
		return
	}
	id := st.req.ID
	if len(id) == 0 {
		st.id = h.ids.next(st.id[:0])
		id = st.id
	}
	st.resp = oip.Response{Model: b2s(model), Version: Version, ID: id, Outputs: st.out[:]}
	var n int
	st.buf, n = oip.AppendInferResponse(st.buf[:0], &st.resp, &st.req)
	st.resp = oip.Response{}
	if n < len(st.buf) {
		var nb [20]byte
		ctx.Response.Header.SetBytesKV(headerIHCL, strconv.AppendInt(nb[:0], int64(n), 10))
		ctx.SetContentTypeBytes(contentOctet)
	} else {
		ctx.SetContentTypeBytes(contentJSON)
	}
	ctx.SetBody(st.buf)
}

// check returns why req is not a batch-1 request of the model's input, or
// "" when it is one.
func (h *bareHandler) check(req *oip.InferRequest) string {
	if len(req.Inputs) != 1 {
		return "baseline: want exactly one input, " + strconv.Quote(h.input) + ", got " + strconv.Itoa(len(req.Inputs))
	}
	t := &req.Inputs[0]
	if t.Name != h.input {
		return "baseline: unknown input " + strconv.Quote(t.Name) + ": the model's input is " + strconv.Quote(h.input)
	}
	if t.DataType != runtime.FP32 {
		return "baseline: input " + strconv.Quote(t.Name) + " is " + t.DataType.String() + ", want FP32"
	}
	if len(t.Shape) != 2 || t.Shape[0] != 1 || t.Shape[1] != int64(h.features) || len(t.Data) != 4*h.features {
		return "baseline: input " + strconv.Quote(t.Name) + " must have shape [1," + strconv.Itoa(h.features) + "] (the bare baseline takes one row per request)"
	}
	for i := range req.Outputs {
		if req.Outputs[i].Name != h.output {
			return "baseline: unknown output " + strconv.Quote(req.Outputs[i].Name) + ": the model's output is " + strconv.Quote(h.output)
		}
	}
	return ""
}

// maxPooledBuf keeps one huge response from pinning its buffer in the pool.
const maxPooledBuf = 1 << 20

func (h *bareHandler) release(st *bareState) {
	st.req.Reset()
	if cap(st.buf) > maxPooledBuf {
		st.buf = nil
	}
	h.states.Put(st)
}

func bareError(ctx *fasthttp.RequestCtx, code int, msg string) {
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(oip.AppendError(nil, msg))
}

func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
