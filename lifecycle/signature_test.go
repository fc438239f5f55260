package lifecycle

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"event":"drift","id":"drift-1"}`)
	good := Sign(testSecret, now, body)
	if !strings.HasPrefix(good, "t=1795780800,v1=") || len(good) != len("t=1795780800,v1=")+64 {
		t.Fatalf("Sign = %q", good)
	}
	f := func(secret []byte, header string, body []byte, at time.Time, want error) {
		t.Helper()
		err := Verify(secret, header, body, at, time.Minute)
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("Verify(%q, %q, %q, %s) = %v, want %v", secret, header, body, at, err, want)
		}
	}
	f(testSecret, good, body, now, nil)
	f(testSecret, good, body, now.Add(59*time.Second), nil)
	f(testSecret, good, body, now.Add(-59*time.Second), nil) // sender's clock a bit ahead
	f([]byte("wrong secret"), good, body, now, ErrBadSignature)
	f(testSecret, good, []byte(`{"event":"drift","id":"drift-2"}`), now, ErrBadSignature)
	f(testSecret, good, body, now.Add(2*time.Minute), ErrStaleSignature)  // a replay
	f(testSecret, good, body, now.Add(-2*time.Minute), ErrStaleSignature) // from the future
	// A replay with a fresh timestamp but the old MAC does not verify.
	f(testSecret, strings.Replace(good, "t=1795780800", "t=1795780920", 1), body, now.Add(2*time.Minute), ErrBadSignature)
	// Key rotation: any one v1 may match; unknown keys are ignored.
	old := Sign([]byte("old"), now, body)
	f(testSecret, old+","+good[strings.Index(good, "v1="):]+",v0=abc", body, now, nil)
	for _, h := range []string{"", "garbage", "t=1795780800", "v1=" + good[16:], "t=x," + good[13:], "t=1795780800,v1=zz", "t=1,t=2," + good[13:]} {
		f(testSecret, h, body, now, ErrBadSignature)
	}
	// Zero tolerance means DefaultTolerance.
	if err := Verify(testSecret, good, body, now.Add(4*time.Minute), 0); err != nil {
		t.Fatal(err)
	}
}

func TestEventID(t *testing.T) {
	start := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	id := EventID("fraud", 3, start)
	if !strings.HasPrefix(id, "drift-") || len(id) != len("drift-")+32 {
		t.Fatalf("EventID = %q", id)
	}
	// The same episode seen by another leader, in another zone: same key.
	if got := EventID("fraud", 3, start.In(time.FixedZone("X", 3600))); got != id {
		t.Fatalf("zone changed the key: %q vs %q", got, id)
	}
	for _, other := range []string{EventID("fraud", 4, start), EventID("fraud2", 3, start), EventID("fraud", 3, start.Add(time.Minute)), EventID("fraud3", 0, start)} {
		if other == id {
			t.Fatalf("different episodes share key %q", id)
		}
	}
}
