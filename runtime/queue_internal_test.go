package runtime

import (
	"errors"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/testmodels"
)

// hangDeadline bounds waits that only a bug can make long.
const hangDeadline = time.Minute

// holdSession takes m's only idle session, as a call in its ORT Run would
// hold it, and returns the function that gives it back. Only for models
// with batching off.
func holdSession(t *testing.T, m *Model) (release func()) {
	t.Helper()
	var w *worker
	select {
	case w = <-m.free:
	case <-time.After(hangDeadline):
		t.Fatal("no idle session to hold")
	}
	done := false
	release = func() {
		if !done {
			done = true
			m.free <- w
		}
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n calls wait for a session. They are on their way
// into acquire, so only a hang makes this long.
func waitQueued(t *testing.T, m *Model, n int64) {
	t.Helper()
	deadline := time.Now().Add(hangDeadline)
	for m.QueueDepth() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue depth %d, want %d", m.QueueDepth(), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func dynamicCall(rows int) *Call {
	c := NewCall()
	c.AddInput().SetFloat32s("input_vectors", []int64{int64(rows), 10}, make([]float32, rows*10))
	return c
}

// TestQueueFull holds the only session on purpose (rather than hoping two
// large batches overlap, which a fresh-clone run on a busy machine showed
// they need not): with MaxQueue 1, one call waits, the next is refused
// with ErrQueueFull at once, and the waiting call runs when the session
// comes back.
func TestQueueFull(t *testing.T) {
	m, err := Load(testmodels.Read(t, "example_dynamic_axes.onnx"), Config{Sessions: 1, MaxQueue: 1, QueueTimeout: hangDeadline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	release := holdSession(t, m)
	waiting := make(chan error, 1)
	go func() { waiting <- m.Infer(dynamicCall(2)) }()
	waitQueued(t, m, 1)
	for i := 0; i < 3; i++ {
		if err := m.Infer(dynamicCall(1)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("call %d with the session held and the queue full: %v, want ErrQueueFull", i, err)
		}
	}
	if d := m.QueueDepth(); d != 1 {
		t.Fatalf("refused calls left the queue depth at %d, want 1", d)
	}
	release()
	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("the queued call failed once the session was free: %v", err)
		}
	case <-time.After(hangDeadline):
		t.Fatal("the queued call never ran after the session was given back")
	}
	if err := m.Infer(dynamicCall(1)); err != nil {
		t.Fatalf("a call with the queue empty again: %v", err)
	}
	if d := m.QueueDepth(); d != 0 {
		t.Fatalf("queue depth %d after every call finished", d)
	}
}

// TestQueueTimeout: a call that waits for a held session past QueueTimeout
// fails with ErrTimeout (the session is held for as long as it takes, so
// the outcome does not depend on how fast the machine is).
func TestQueueTimeout(t *testing.T) {
	m, err := Load(testmodels.Read(t, "example_dynamic_axes.onnx"), Config{Sessions: 1, QueueTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	release := holdSession(t, m)
	if err := m.Infer(dynamicCall(1)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("call with the only session held: %v, want ErrTimeout", err)
	}
	if d := m.QueueDepth(); d != 0 {
		t.Fatalf("a timed-out call left the queue depth at %d", d)
	}
	release()
	if err := m.Infer(dynamicCall(1)); err != nil {
		t.Fatalf("after the session came back: %v", err)
	}
}
