package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/internal/memlimit"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/internal/validate"
	"github.com/modelgate/modelgate/runtime"
)

func init() {
	register(command{name: "validate", summary: "run the validation gate on an ONNX model (what registration runs in a child process)", run: runValidate})
}

// runValidate is the child side of validate.Run, and a tool for people:
//
//	modelgate validate model.onnx --json=false
//	modelgate validate --stdin < model.onnx
//
// It limits its own address space first (--max-memory, RLIMIT_AS), before
// ONNX Runtime is loaded, then runs validate.Local and prints the Report.
// Exit status: 0 the model passed, 1 it did not (or the gate could not run:
// then nothing is printed on stdout), 2 a usage error.
func runValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: modelgate validate [flags] (FILE.onnx | --stdin)")
		fs.PrintDefaults()
	}
	def := validate.DefaultOptions()
	var (
		opts      = def
		fromStdin = fs.Bool("stdin", false, "read the model from standard input instead of a file")
		asJSON    = fs.Bool("json", true, "print the report as JSON; --json=false prints it for a person")
		golden    = fs.String("golden", "", "`FILE` of golden pairs: [{\"inputs\":[…],\"outputs\":[…]}], tensors as the Open Inference Protocol writes them")
		maxMem    = bytesFlag(def.MaxMemory)
		maxModel  = bytesFlag(def.Limits.MaxModelBytes)
		maxTensor = bytesFlag(def.Limits.MaxTensorBytes)
		maxTotal  = bytesFlag(def.Limits.MaxTotalBytes)
	)
	fs.Var(&maxMem, "max-memory", "address-space limit (RLIMIT_AS) this process sets on itself before loading ONNX Runtime, e.g. 4GiB; 0 for none")
	fs.StringVar(&opts.ORTLib, "ort-lib", ortlib.Path(), "ONNX Runtime shared library, "+runtime.RequiredVersion+"x (env "+ortlib.EnvVar+")")
	fs.Var(&maxModel, "max-model-bytes", "largest model file accepted")
	fs.Var(&maxTensor, "max-tensor-bytes", "largest size one stored tensor may declare")
	fs.Var(&maxTotal, "max-total-bytes", "largest size all stored tensors may declare together")
	fs.IntVar(&opts.Limits.MaxDepth, "max-depth", def.Limits.MaxDepth, "deepest nesting of subgraphs")
	fs.Float64Var(&opts.Tolerance, "tolerance", def.Tolerance, "golden outputs match when |got-want| <= tolerance*max(1,|want|)")
	fs.DurationVar(&opts.LatencyBudget, "latency-budget", 0, "most the p99 of the timed runs may take (0: measure, do not enforce)")
	fs.IntVar(&opts.LatencyRuns, "latency-runs", def.LatencyRuns, "timed runs for the latency check")
	fs.IntVar(&opts.IntraOpThreads, "intra-op-threads", def.IntraOpThreads, "ONNX Runtime threads inside one run")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err.Error())
	}
	var file string
	switch {
	case fs.NArg() > 1:
		return usageError("want one model file, got " + strings.Join(fs.Args(), " "))
	case fs.NArg() == 1 && *fromStdin:
		return usageError("give a model file or --stdin, not both")
	case fs.NArg() == 1:
		file = fs.Arg(0)
	case !*fromStdin:
		return usageError("want a model file or --stdin (modelgate validate -h)")
	}
	opts.MaxMemory = int64(maxMem)
	opts.Limits.MaxModelBytes = int64(maxModel)
	opts.Limits.MaxTensorBytes = int64(maxTensor)
	opts.Limits.MaxTotalBytes = int64(maxTotal)
	if opts.MaxMemory == 0 {
		opts.MaxMemory = -1 // 0 on the command line means no limit
	}
	if err := opts.Validate(); err != nil {
		return usageError(err.Error())
	}

	// First, before anything large is allocated or ONNX Runtime is loaded.
	if err := validate.LimitMemory(opts.MaxMemory); err != nil {
		return err
	}
	testHooks()

	if *golden != "" {
		f, err := os.Open(*golden)
		if err != nil {
			return usageError("cannot read golden pairs: " + err.Error())
		}
		opts.Golden, err = validate.DecodeGolden(f)
		f.Close()
		if err != nil {
			return usageError(err.Error())
		}
	}
	onnx, err := readModel(file, opts.Limits.MaxModelBytes)
	if err != nil {
		return err
	}
	rep, err := validate.Local(onnx, opts)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if !rep.Passed {
		return errors.New("the model did not pass: " + rep.Reason)
	}
	return nil
}

// readModel reads the model from file, or stdin when file is "", keeping at
// most limit+1 bytes: enough for the size check to refuse a larger one.
func readModel(file string, limit int64) ([]byte, error) {
	var r io.Reader = os.Stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, usageError("cannot read the model: " + err.Error())
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the model: %w", err)
	}
	return b, nil
}

// testHooks lets tests make this process behave as ONNX Runtime crashing or
// hanging on a crafted model would (validate.EnvTestCrash,
// validate.EnvTestSleep). Nothing but tests sets these variables.
func testHooks() {
	switch os.Getenv(validate.EnvTestCrash) {
	case "":
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	default:
		syscall.Kill(os.Getpid(), syscall.SIGSEGV)
	}
	if d, err := time.ParseDuration(os.Getenv(validate.EnvTestSleep)); err == nil {
		time.Sleep(d)
	}
}

// bytesFlag is a byte count flag that takes a plain number or a binary
// suffix: 4GiB, 512MiB, 64KiB (also KB/MB/GB as powers of 1000).
type bytesFlag int64

func (b *bytesFlag) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *bytesFlag) Set(s string) error {
	n, err := memlimit.ParseBytes(s)
	if err != nil {
		return err
	}
	*b = bytesFlag(n)
	return nil
}
