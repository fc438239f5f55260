package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/runtime"
)

func init() {
	register(command{name: "serve", summary: "run a scoring node (Open Inference Protocol over HTTP)", run: runServe})
}

// modelFlag collects repeated --model NAME[@VERSION]=PATH.onnx flags.
type modelFlag []modelSpec

type modelSpec struct{ name, version, path string }

func (m *modelFlag) String() string {
	parts := make([]string, len(*m))
	for i, s := range *m {
		parts[i] = s.name + "@" + s.version + "=" + s.path
	}
	return strings.Join(parts, ",")
}

func (m *modelFlag) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH.onnx or NAME@VERSION=PATH.onnx, got %q", v)
	}
	version := "1"
	if n, ver, ok := strings.Cut(name, "@"); ok {
		name, version = n, ver
	}
	if !validName(name) || !validName(version) {
		return fmt.Errorf("model names and versions are letters, digits, '.', '_' and '-' (at most 64), got %q", v)
	}
	for _, s := range *m {
		if s.name == name && s.version == version {
			return fmt.Errorf("model %s version %s given twice", name, version)
		}
	}
	*m = append(*m, modelSpec{name, version, path})
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	var (
		gw     gateway.Config
		rt     runtime.Config
		models modelFlag
	)
	def := gateway.DefaultConfig()
	fs.StringVar(&gw.Listen, "listen", def.Listen, "scoring address (Open Inference Protocol)")
	fs.StringVar(&gw.AdminListen, "admin-listen", def.AdminListen, "admin and /metrics address")
	dataDir := fs.String("data-dir", "data", "node state directory (created if missing)")
	lib := fs.String("ort-lib", ortlib.Path(), "ONNX Runtime shared library, "+runtime.RequiredVersion+"x (env "+ortlib.EnvVar+"; `make ort` fetches it)")
	fs.Var(&models, "model", "serve `NAME[@VERSION]=PATH.onnx` (repeatable; VERSION defaults to 1; the last version given for a name answers its unversioned calls)")
	fs.IntVar(&rt.Sessions, "sessions", 0, "ORT sessions per model version (default GOMAXPROCS)")
	fs.IntVar(&rt.IntraOpThreads, "intra-op-threads", 1, "ORT threads inside one run")
	fs.IntVar(&rt.InterOpThreads, "inter-op-threads", 1, "ORT threads across graph branches")
	opt := fs.String("graph-opt", "all", "ORT graph optimisation: disable, basic, extended or all")
	fs.IntVar(&rt.MaxBatch, "max-batch", 0, "dynamic batching: most rows per ORT run (0 or 1: off, best batch-1 latency)")
	fs.DurationVar(&rt.MaxDelay, "max-batch-delay", 500*time.Microsecond, "dynamic batching: longest a call waits for its batch to fill")
	fs.IntVar(&rt.MaxQueue, "max-queue", 0, "calls that may wait for a session per model version before 503 (default 128 per session)")
	fs.DurationVar(&rt.QueueTimeout, "queue-timeout", time.Second, "longest a call waits for a session before 503")
	fs.IntVar(&gw.MaxBodyBytes, "max-body", def.MaxBodyBytes, "largest scoring request body in bytes (413 above)")
	fs.DurationVar(&gw.ReadTimeout, "read-timeout", def.ReadTimeout, "time to read one request")
	fs.DurationVar(&gw.WriteTimeout, "write-timeout", def.WriteTimeout, "time to write one response")
	fs.DurationVar(&gw.IdleTimeout, "idle-timeout", def.IdleTimeout, "keep-alive connections idle this long are closed")
	fs.IntVar(&gw.Concurrency, "concurrency", def.Concurrency, "connections served at once per listener")
	fs.StringVar(&gw.Node, "node", "", "node name (default the hostname)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long in-flight requests may take to finish")
	if err := parse(fs, args); err != nil {
		return err
	}
	rt.Optimization = runtime.GraphOptimization(*opt)
	if err := rt.Validate(); err != nil {
		return usageError(err.Error())
	}
	gw.Version = version
	log := slog.New(slog.NewTextHandler(stderr, nil))

	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return fmt.Errorf("cannot create the data directory: %w", err)
	}
	if err := runtime.Init(*lib); err != nil {
		return err
	}
	srv := gateway.New(gw)
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("listening", "scoring", "http://"+srv.Addr(), "admin", "http://"+srv.AdminAddr(), "onnxruntime", runtime.Version(), "data_dir", *dataDir)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	loaded := make(chan error, 1)
	go func() { loaded <- loadModels(srv, models, rt, log) }()
	select {
	case err := <-loaded:
		if err != nil {
			shutdown(srv, *drain, log)
			return err
		}
		srv.SetReady(true)
		log.Info("ready", "models", len(models))
	case sig := <-stop:
		log.Info("stopping before ready", "signal", sig.String())
		shutdown(srv, *drain, log)
		return nil
	}
	sig := <-stop
	log.Info("draining", "signal", sig.String(), "timeout", drain.String())
	return shutdown(srv, *drain, log)
}

// loadModels loads every --model, two at a time (each load is mostly one
// core's work in ORT), and publishes each as soon as it is warm.
func loadModels(srv *gateway.Server, models modelFlag, rt runtime.Config, log *slog.Logger) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	sem := make(chan struct{}, 2)
	slots := make([]*runtime.Slot, len(models))
	for i, m := range models {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			b, err := os.ReadFile(m.path)
			if err == nil {
				slots[i], err = srv.Catalog.Load(m.name, m.version, b, rt)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("model %s version %s from %s: %v", m.name, m.version, filepath.Clean(m.path), err))
				mu.Unlock()
				return
			}
			sig := slots[i].Model.Signature()
			log.Info("loaded", "model", m.name, "version", m.version, "path", m.path,
				"inputs", len(sig.Inputs), "outputs", len(sig.Outputs), "took", time.Since(start).Round(time.Millisecond).String())
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		for _, s := range slots {
			if s != nil {
				s.Retire()
			}
		}
		return fmt.Errorf("cannot load %d of %d models:\n  %s", len(errs), len(models), strings.Join(errs, "\n  "))
	}
	// Publish in flag order so the last version given for a name is its
	// champion.
	for _, s := range slots {
		srv.Catalog.Publish(s, true)
	}
	return nil
}

func shutdown(srv *gateway.Server, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown did not drain cleanly", "err", err)
		return err
	}
	log.Info("stopped")
	return nil
}
