package predlog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRandomOps applies a random sequence of appends (async and durable,
// two models, shadows), labels (new, repeated, changed) and restarts, and
// checks after each restart that the log agrees with a model of it: every
// record found by Get, all-rows export in append order with the current
// labels, and the labelled export giving each labelled row once.
func TestRandomOps(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	c := testConfig(t)
	l := openLog(t, c)
	g := newDemoGen(seed)
	models := []string{"fraud", "churn"}
	rows := map[string][]string{}             // model -> "id/role" in append order
	labels := map[string]map[string]float64{} // model -> id -> label
	ids := map[string][]string{}              // model -> ids
	check := func() {
		t.Helper()
		for _, m := range models {
			var got []string
			_, err := l.Export(m, "", false, 0, func(r *Row) error {
				s := r.Record.RequestID + "/" + r.Record.Role.String()
				if v, ok := labels[m][r.Record.RequestID]; ok != r.Labelled || (ok && v != r.Label.Value) {
					return fmt.Errorf("row %s: labelled %v %g, want %v %g", s, r.Labelled, r.Label.Value, ok, v)
				}
				got = append(got, s)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, rows[m]) {
				t.Fatalf("%s: exported %v\nwant %v", m, got, rows[m])
			}
			seen := map[string]int{}
			_, err = l.Export(m, "", true, 0, func(r *Row) error {
				seen[r.Record.RequestID+"/"+r.Record.Role.String()]++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range rows[m] {
				id := s[:len(s)-len("/"+roleOf(s))]
				want := 0
				if _, ok := labels[m][id]; ok {
					want = 1
				}
				if seen[s] != want {
					t.Fatalf("%s: labelled export gave %s %d times, want %d", m, s, seen[s], want)
				}
			}
			for _, id := range ids[m] {
				if _, err := l.Get(id); err != nil {
					t.Fatalf("Get(%s): %v", id, err)
				}
			}
		}
	}
	for op := 0; op < 400; op++ {
		m := models[rng.IntN(len(models))]
		switch k := rng.IntN(20); {
		case k < 12: // a prediction, sometimes with a shadow copy
			r := g.next()
			r.Model = m
			app := l.Append
			if rng.IntN(4) == 0 {
				app = l.AppendDurable
			}
			if err := app(r); err != nil {
				t.Fatal(err)
			}
			rows[m] = append(rows[m], r.RequestID+"/champion")
			ids[m] = append(ids[m], r.RequestID)
			if rng.IntN(5) == 0 {
				r.Role, r.Version = RoleShadow, "2"
				if err := app(r); err != nil {
					t.Fatal(err)
				}
				rows[m] = append(rows[m], r.RequestID+"/shadow")
			}
		case k < 18 && len(ids[m]) > 0: // a label, maybe again, maybe changed
			id := ids[m][rng.IntN(len(ids[m]))]
			v := float64(rng.IntN(2))
			if labels[m] == nil {
				labels[m] = map[string]float64{}
			}
			old, had := labels[m][id]
			n, err := l.PutLabels(m, []Label{{ID: id, Value: v}})
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 1, false: 0}[!had || old != v]; n != want {
				t.Fatalf("PutLabels(%s=%g) over %v,%g = %d, want %d", id, v, had, old, n, want)
			}
			labels[m][id] = v
		case k == 19: // restart
			if err := closeLog(t, l); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, c)
			check()
		}
	}
	if err := closeLog(t, l); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, c)
	check()
}

func roleOf(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return s[i+1:]
		}
	}
	return ""
}
