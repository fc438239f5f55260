package baseline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	goruntime "runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	ort "github.com/yalue/onnxruntime_go"

	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

// Version is the model_version every baseline answers with.
const Version = "baseline"

// MaxSessions bounds Config.Sessions.
const MaxSessions = 256

// maxBody is the largest request body either baseline reads (the gateway's
// default limit is of the same order).
const maxBody = 64 << 20

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Kind names a baseline server.
type Kind string

const (
	// Bare is the practical limit: fasthttp, the gateway's pooled OIP codec
	// and one preallocated AdvancedSession per core. Batch-1 only.
	Bare Kind = "bare"
	// NetHTTP is the straightforward server: net/http, encoding/json and
	// per-request tensors on a pool of DynamicAdvancedSessions.
	NetHTTP Kind = "nethttp"
)

// Kinds lists every baseline, in the order the CLI's help names them.
var Kinds = []Kind{Bare, NetHTTP}

// ParseKind returns the Kind named s ("bare" or "nethttp").
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("baseline: unknown baseline %q: want bare or nethttp", s)
}

// Config is what a baseline serves and where.
type Config struct {
	// Listen is the TCP address to listen on, e.g. 127.0.0.1:8090; port 0
	// picks a free one (see Server.Addr).
	Listen string
	// Model is the ONNX model: one FP32 input [N,F] and an FP32 output
	// [N,K] with F and K fixed.
	Model []byte
	// InputName is the model input requests must name; empty means the
	// model's only input.
	InputName string
	// OutputName is the model output answered; empty means the model's
	// first output.
	OutputName string
	// Sessions is how many ORT sessions run requests concurrently (each with
	// one intra-op thread). Default: GOMAXPROCS.
	Sessions int
	// ORTLib is ONNX Runtime's shared library. Default: ortlib.Path().
	ORTLib string
}

// Server is a running baseline. Close stops it.
type Server struct {
	kind Kind
	ln   net.Listener

	fast *fasthttp.Server
	bare *bareHandler

	std  *http.Server
	nett *netHandler

	serveErr  chan error
	closeOnce sync.Once
	closeErr  error
}

// Start loads cfg.Model into cfg.Sessions ORT sessions, starts the baseline
// k on cfg.Listen and returns once it accepts connections.
func (k Kind) Start(cfg Config) (*Server, error) {
	if k != Bare && k != NetHTTP {
		return nil, fmt.Errorf("baseline: unknown baseline %q: want bare or nethttp", string(k))
	}
	if len(cfg.Model) == 0 {
		return nil, errors.New("baseline: Config.Model is empty: give the ONNX model's bytes")
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = goruntime.GOMAXPROCS(0)
	}
	if cfg.Sessions > MaxSessions {
		return nil, fmt.Errorf("baseline: Sessions (%d) must be at most %d", cfg.Sessions, MaxSessions)
	}
	if cfg.ORTLib == "" {
		cfg.ORTLib = ortlib.Path()
	}
	if cfg.Listen == "" {
		return nil, errors.New("baseline: Config.Listen is empty: give a host:port such as 127.0.0.1:8090")
	}
	if err := runtime.Init(cfg.ORTLib); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	sh, err := inspect(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{kind: k, serveErr: make(chan error, 1)}
	switch k {
	case Bare:
		s.bare, err = newBareHandler(cfg, sh)
	case NetHTTP:
		s.nett, err = newNetHandler(cfg, sh)
	}
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.destroySessions()
		return nil, fmt.Errorf("baseline: cannot listen on %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	switch k {
	case Bare:
		s.fast = &fasthttp.Server{
			Name:                  "modelgate-baseline-bare",
			Handler:               s.bare.handle,
			MaxRequestBodySize:    maxBody,
			TCPKeepalive:          true,
			CloseOnShutdown:       true,
			NoDefaultServerHeader: true,
			Logger:                quietLogger{},
		}
		go func() { s.serveErr <- s.fast.Serve(ln) }()
	case NetHTTP:
		s.std = &http.Server{Handler: s.nett.mux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { s.serveErr <- s.std.Serve(ln) }()
	}
	return s, nil
}

// Kind returns which baseline s is.
func (s *Server) Kind() Kind { return s.kind }

// Addr returns the address s listens on (with the port the kernel chose when
// Config.Listen asked for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops taking connections, waits (up to a few seconds) for requests
// in flight, and frees the ORT sessions. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		var errs []error
		switch {
		case s.fast != nil:
			if err := s.fast.ShutdownWithContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("baseline: shutdown: %w", err))
			}
		case s.std != nil:
			if err := s.std.Shutdown(ctx); err != nil {
				_ = s.std.Close()
				errs = append(errs, fmt.Errorf("baseline: shutdown: %w", err))
			}
		}
		if err := <-s.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("baseline: serve: %w", err))
		}
		if len(errs) == 0 {
			// Every handler has returned, so every session is idle.
			errs = append(errs, s.destroySessions())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Server) destroySessions() error {
	switch {
	case s.bare != nil:
		return s.bare.destroy()
	case s.nett != nil:
		return s.nett.destroy()
	}
	return nil
}

// shape is what a baseline needs to know of its model.
type shape struct {
	input, output string
	features      int // F: the input is [N,F]
	width         int // K: the output is [N,K]
}

// inspect checks that cfg.Model has the shape a baseline serves.
func inspect(cfg Config) (shape, error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(cfg.Model)
	if err != nil {
		return shape{}, fmt.Errorf("baseline: cannot load the model: %w", err)
	}
	var in, out *ort.InputOutputInfo
	switch {
	case cfg.InputName != "":
		for i := range ins {
			if ins[i].Name == cfg.InputName {
				in = &ins[i]
			}
		}
		if in == nil {
			return shape{}, fmt.Errorf("baseline: the model has no input %q", cfg.InputName)
		}
		if len(ins) != 1 {
			return shape{}, fmt.Errorf("baseline: the model has %d inputs; a baseline serves one-input models", len(ins))
		}
	case len(ins) == 1:
		in = &ins[0]
	default:
		return shape{}, fmt.Errorf("baseline: the model has %d inputs; a baseline serves one-input models", len(ins))
	}
	for i := range outs {
		if outs[i].OrtValueType == ort.ONNXTypeTensor && (cfg.OutputName == "" || outs[i].Name == cfg.OutputName) {
			out = &outs[i]
			break
		}
	}
	if out == nil {
		if cfg.OutputName != "" {
			return shape{}, fmt.Errorf("baseline: the model has no tensor output %q", cfg.OutputName)
		}
		return shape{}, errors.New("baseline: the model has no tensor output")
	}
	f, err := rowWidth(in)
	if err != nil {
		return shape{}, err
	}
	k, err := rowWidth(out)
	if err != nil {
		return shape{}, err
	}
	return shape{input: in.Name, output: out.Name, features: f, width: k}, nil
}

// rowWidth checks that info is an FP32 tensor [N,W] with W fixed and
// returns W.
func rowWidth(info *ort.InputOutputInfo) (int, error) {
	if info.OrtValueType != ort.ONNXTypeTensor || info.DataType != ort.TensorElementDataTypeFloat {
		return 0, fmt.Errorf("baseline: %q is not an FP32 tensor: a baseline serves FP32 [N,F] → FP32 [N,K] models", info.Name)
	}
	d := info.Dimensions
	if len(d) != 2 || d[1] <= 0 || d[1] > 1<<20 {
		return 0, fmt.Errorf("baseline: %q has shape %v: a baseline serves FP32 [N,F] → FP32 [N,K] models with F and K fixed", info.Name, []int64(d))
	}
	return int(d[1]), nil
}

// sessionOptions are the options of every baseline session: one intra-op
// and one inter-op thread (the gateway's defaults), so that Sessions
// sessions use Sessions cores.
func sessionOptions() (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		opts.Destroy()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		opts.Destroy()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	return opts, nil
}

// ids generates request ids for requests that carry none: a random
// per-server prefix and a sequence number, like the gateway's.
type ids struct {
	prefix [9]byte
	seq    atomic.Uint64
}

func newIDs() *ids {
	g := &ids{}
	var b [4]byte
	_, _ = rand.Read(b[:])
	hex.Encode(g.prefix[:8], b[:])
	g.prefix[8] = '-'
	return g
}

// next appends a fresh id to dst.
func (g *ids) next(dst []byte) []byte {
	dst = append(dst, g.prefix[:]...)
	return strconv.AppendUint(dst, g.seq.Add(1), 16)
}

// quietLogger drops fasthttp's per-connection error log.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
