package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/demo"
	"github.com/modelgate/modelgate/internal/ortlib"
	"github.com/modelgate/modelgate/registry"
	"github.com/modelgate/modelgate/runtime"
)

func TestMain(m *testing.M) {
	if err := runtime.Init(ortlib.Path()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

var (
	onnxOnce  sync.Once
	onnxBytes []byte
)

// demoONNX is the demo fraud model; every version in these tests loads it.
func demoONNX(t testing.TB) []byte {
	onnxOnce.Do(func() {
		b, err := demo.FraudModel(demo.DefaultSeed)
		if err != nil {
			t.Fatal(err)
		}
		onnxBytes = b
	})
	return onnxBytes
}

func loadSlot(t testing.TB, model, version string) *runtime.Slot {
	t.Helper()
	m, err := runtime.Load(demoONNX(t), runtime.Config{Sessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	return runtime.NewSlot(model, version, m)
}

func drained(s *runtime.Slot) bool {
	select {
	case <-s.Drained():
		return true
	default:
		return false
	}
}

func TestRouterRoles(t *testing.T) {
	r := NewRouter[string]()
	v1, v2, v3 := loadSlot(t, "m", "1"), loadSlot(t, "m", "2"), loadSlot(t, "m", "3")
	r.Publish(v1, "a1", false) // the first version answers even when not champion
	r.Publish(v2, "a2", false)
	r.Publish(v3, "a3", false)
	m := r.Table().Model("m")
	if m.Champion.Slot != v1 || m.Version("2").Attach != "a2" || len(m.Versions()) != 3 {
		t.Fatalf("after publishing: %+v", m)
	}
	if !r.SetCanary("m", "2", 5000) || !r.SetShadows("m", []string{"3", "9"}) {
		t.Fatal("roles for loaded versions refused")
	}
	if r.SetCanary("m", "9", 100) || r.SetCanary("nope", "2", 100) {
		t.Fatal("a canary that is not loaded was accepted")
	}
	old := r.Table()
	m = old.Model("m")
	champ, canary := 0, 0
	for i := 0; i < 1000; i++ {
		switch m.Pick([]byte(fmt.Sprint("key-", i))).Slot {
		case v1:
			champ++
		case v2:
			canary++
		default:
			t.Fatal("Pick chose neither the champion nor the canary")
		}
	}
	if champ == 0 || canary == 0 || len(m.Shadows) != 1 || m.Shadows[0].Slot != v3 {
		t.Fatalf("champion %d, canary %d, shadows %v", champ, canary, m.Shadows)
	}

	// Replacing a version keeps its roles and retires the old slot; the
	// table published before is untouched.
	v2b := loadSlot(t, "m", "2")
	r.Publish(v2b, "a2b", false)
	if m := r.Table().Model("m"); m.Canary.Slot != v2b || m.Canary.Attach != "a2b" || m.CanaryBP != 5000 {
		t.Fatalf("the replacement lost the canary role: %+v", m.Canary)
	}
	if old.Model("m").Canary.Slot != v2 {
		t.Fatal("a published table changed")
	}
	if !drained(v2) {
		t.Fatal("the replaced slot was not retired")
	}

	// Removing drops every role the version had.
	r.Remove("m", "3")
	r.Remove("m", "2")
	m = r.Table().Model("m")
	if m.Canary != nil || m.CanaryBP != 0 || len(m.Shadows) != 0 || !drained(v3) || !drained(v2b) {
		t.Fatalf("after removing the canary and the shadow: %+v", m)
	}
	// Removing the champion hands the role to the highest version left.
	r.Publish(loadSlot(t, "m", "10"), "a10", false)
	r.Remove("m", "1")
	if m := r.Table().Model("m"); m.Champion.Slot.Version != "10" {
		t.Fatalf("champion after removing v1: %s", m.Champion.Slot.Version)
	}
	r.Close()
	if r.Table().Model("m") != nil || !drained(v1) {
		t.Fatal("Close left versions behind")
	}
}

// registrySource is a real registry state behind the Source interface,
// with a clock the test moves.
type registrySource struct {
	t       *testing.T
	mu      sync.Mutex
	st      *registry.State
	changed chan struct{}
	now     time.Time
	keys    int
}

func newRegistrySource(t *testing.T) *registrySource {
	return &registrySource{t: t, st: registry.New(), changed: make(chan struct{}),
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (s *registrySource) RoutingView() registry.RoutingView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.RoutingView()
}

func (s *registrySource) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *registrySource) apply(args registry.Args) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(time.Second)
	s.keys++
	if _, err := s.st.Apply(registry.Command{Time: s.now, Actor: "test", IdempotencyKey: fmt.Sprint("k", s.keys), Args: args}); err != nil {
		s.t.Fatalf("%s: %v", args.Op(), err)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// register adds a validated version. Its digest is made up: the loader
// loads the demo model whatever the digest.
func (s *registrySource) register(model string, n int) {
	sig := registry.Signature{
		Inputs:  []registry.TensorSpec{{Name: "features", DataType: "FP32", Shape: []int64{-1, 30}}},
		Outputs: []registry.TensorSpec{{Name: "probability", DataType: "FP32", Shape: []int64{-1, 1}}},
	}
	sum := sha256.Sum256([]byte(fmt.Sprint(model, n)))
	s.apply(&registry.RegisterArgs{Model: model, Digest: hex.EncodeToString(sum[:]), Size: int64(n), Signature: sig})
	s.apply(&registry.SetValidationArgs{Model: model, Version: n, Passed: true, Signature: sig})
}

// countingLoader loads the demo model and counts loads per version.
type countingLoader struct {
	t     *testing.T
	mu    sync.Mutex
	loads map[string]int
}

func (l *countingLoader) Load(model string, v registry.RouteVersion) (*runtime.Slot, string, error) {
	l.mu.Lock()
	l.loads[fmt.Sprint(model, "/", v.Version)]++
	l.mu.Unlock()
	return loadSlot(l.t, model, fmt.Sprint(v.Version)), fmt.Sprint("attached to v", v.Version), nil
}

// TestReconcilerFollowsTheRegistry drives a real registry through a
// rollout and checks the table after each step: the canary and its weight,
// the shadows, the warm standby kept after a promotion, a rollback that
// loads nothing, the standby's TTL, and deletion draining the version.
func TestReconcilerFollowsTheRegistry(t *testing.T) {
	src := newRegistrySource(t)
	router := NewRouter[string]()
	defer router.Close()
	ld := &countingLoader{t: t, loads: map[string]int{}}
	rec := NewReconciler[string](router, src, ld, nil)
	clock := src.now
	rec.now = func() time.Time { return clock }
	reconcile := func(what string) *Model[string] {
		t.Helper()
		if err := rec.Reconcile(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return router.Table().Model("fraud")
	}

	src.apply(&registry.CreateModelArgs{Model: "fraud"})
	for n := 1; n <= 3; n++ {
		src.register("fraud", n)
	}
	m := reconcile("first champion")
	if m.Champion.Slot.Version != "1" || m.Champion.Attach != "attached to v1" || len(m.Versions()) != 1 {
		t.Fatalf("first champion: %d versions, champion v%s", len(m.Versions()), m.Champion.Slot.Version)
	}
	src.apply(&registry.SetStageArgs{Model: "fraud", Version: 2, Stage: registry.StageCanary, Weight: 0.1})
	src.apply(&registry.SetStageArgs{Model: "fraud", Version: 3, Stage: registry.StageShadow})
	m = reconcile("canary and shadow")
	if m.Canary == nil || m.Canary.Slot.Version != "2" || m.CanaryBP != 10 || len(m.Shadows) != 1 || m.Shadows[0].Slot.Version != "3" {
		t.Fatalf("canary and shadow: %+v", m)
	}

	pol := registry.DefaultPolicy()
	pol.Serving = &registry.ServingPolicy{StandbyTTL: registry.Duration(time.Hour)}
	pol.PredictionLog = &registry.PredictionLogPolicy{Mode: registry.LogDurable}
	src.apply(&registry.SetPolicyArgs{Model: "fraud", Policy: pol})
	src.apply(&registry.PromoteArgs{Model: "fraud", Version: 2})
	m = reconcile("promotion")
	if m.Champion.Slot.Version != "2" || m.Canary != nil || m.Version("1") == nil || m.LogMode != LogDurable {
		t.Fatalf("after promoting the canary: champion v%s, canary %v, v1 loaded %v, log mode %d",
			m.Champion.Slot.Version, m.Canary, m.Version("1") != nil, m.LogMode)
	}
	standby := m.Version("1").Slot
	src.apply(&registry.RollbackArgs{Model: "fraud"})
	m = reconcile("rollback")
	if m.Champion.Slot != standby {
		t.Fatal("the rollback did not route to the warm standby's slot")
	}
	for v, n := range ld.loads {
		if n != 1 {
			t.Fatalf("%s was loaded %d times: a rollback must not load", v, n)
		}
	}
	// v2 is rolled back now: not a standby, so it drains.
	if m.Version("2") != nil {
		t.Fatal("the rolled-back version is still loaded")
	}

	// Promote again: v1 becomes the standby for an hour of the clock.
	src.apply(&registry.PromoteArgs{Model: "fraud", Version: 3})
	m = reconcile("second promotion")
	v1 := m.Version("1").Slot
	clock = clock.Add(59 * time.Minute)
	if m = reconcile("within the TTL"); m.Version("1") == nil {
		t.Fatal("the standby was drained before its TTL")
	}
	clock = clock.Add(2 * time.Minute)
	if m = reconcile("after the TTL"); m.Version("1") != nil || !drained(v1) {
		t.Fatal("the standby outlived its TTL")
	}

	v3 := m.Champion.Slot
	src.register("fraud", 4)
	src.apply(&registry.PromoteArgs{Model: "fraud", Version: 4})
	src.apply(&registry.SetStageArgs{Model: "fraud", Version: 3, Stage: registry.StageShadow})
	src.apply(&registry.SetStageArgs{Model: "fraud", Version: 3, Stage: registry.StageRetired})
	src.apply(&registry.DeleteVersionArgs{Model: "fraud", Version: 3})
	if m = reconcile("delete"); m.Version("3") != nil || !drained(v3) {
		t.Fatal("a deleted version is still loaded")
	}
}

// TestReconcilerRunFollowsChanges: Run applies each registry change without
// being asked, and returns when stopped.
func TestReconcilerRunFollowsChanges(t *testing.T) {
	src := newRegistrySource(t)
	router := NewRouter[string]()
	defer router.Close()
	rec := NewReconciler[string](router, src, &countingLoader{t: t, loads: map[string]int{}}, nil)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { rec.Run(stop); close(done) }()
	src.apply(&registry.CreateModelArgs{Model: "fraud"})
	src.register("fraud", 1)
	src.register("fraud", 2)
	src.apply(&registry.SetStageArgs{Model: "fraud", Version: 2, Stage: registry.StageCanary, Weight: 25})
	for {
		if m := router.Table().Model("fraud"); m != nil && m.Canary != nil && m.CanaryBP == 2500 {
			break
		}
		time.Sleep(time.Millisecond) // Run reconciles on its own; only a hang makes this loop forever
	}
	close(stop)
	<-done
}
