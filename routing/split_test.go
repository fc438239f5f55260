package routing

import (
	"math"
	"strconv"
	"testing"
)

// The buckets of these keys are part of the product's contract: a rollout in
// progress keeps every account on its version across an upgrade only if
// they never change.
func TestBucketIsStable(t *testing.T) {
	f := func(key string, want uint32) {
		t.Helper()
		if got := Bucket([]byte(key)); got != want {
			t.Fatalf("Bucket(%q) = %d, want %d: changing the hash reshuffles every sticky canary assignment", key, got, want)
		}
	}
	f("", 6921) // XXH64 of nothing, seed 0, is 0xef46db3751d8e999 by the spec
	f("card-0000000001", 3571)
	f("acct/42", 3886)
	f("req-1", 7408)
	f("ünïcödé", 6172)
}

func TestSplitShareAndMonotonicity(t *testing.T) {
	const n = 100000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("card-" + strconv.Itoa(i))
	}
	share := func(bp uint32) (float64, []bool) {
		in := make([]bool, n)
		c := 0
		for i, k := range keys {
			if in[i] = ToCanary(k, bp); in[i] {
				c++
			}
		}
		return float64(c) / n, in
	}
	at10, in10 := share(1000)
	if math.Abs(at10-0.10) > 0.005 {
		t.Fatalf("weight 10%%: the canary got %.2f%% of 100,000 keys, want 10 ± 0.5", 100*at10)
	}
	at25, in25 := share(2500)
	if math.Abs(at25-0.25) > 0.005 {
		t.Fatalf("weight 25%%: the canary got %.2f%%", 100*at25)
	}
	for i := range keys {
		if in10[i] && !in25[i] {
			t.Fatalf("raising the weight 10%% → 25%% moved %q back to the champion", keys[i])
		}
	}
	if at, _ := share(10); math.Abs(at-0.001) > 0.0005 {
		t.Fatalf("weight 0.1%%: the canary got %.3f%%", 100*at)
	}
	if at, _ := share(0); at != 0 {
		t.Fatalf("weight 0: the canary got %.3f%%", 100*at)
	}
	if at, _ := share(Buckets); at != 1 {
		t.Fatalf("weight 100%%: the canary got %.3f%%", 100*at)
	}
}

func TestToCanaryAllocatesNothing(t *testing.T) {
	key := []byte("card-1234567890")
	if n := testing.AllocsPerRun(100, func() { ToCanary(key, 1000) }); n != 0 {
		t.Fatalf("%v allocations per split", n)
	}
}

func BenchmarkToCanary(b *testing.B) {
	key := []byte("0a1b2c3d4e5f6071-1f2e")
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		if ToCanary(key, 1000) {
			n++
		}
	}
	sink = n
}

var sink int
