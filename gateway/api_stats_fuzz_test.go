package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecodeStatsPush: a push body is a message from another node (or from
// anyone holding an admin token), so its decoder must refuse whatever is
// not a valid push without panicking, and what it accepts must survive a
// round trip unchanged. Seeds: testdata/fuzz/FuzzDecodeStatsPush (crashers
// found are kept there).
func FuzzDecodeStatsPush(f *testing.F) {
	f.Add([]byte(`{"v":1,"node":"n2","seq":1,"window_ns":60000000000,"drift":[{"model":"fraud","version":1,"through":5,"windows":[{"id":4,"sketch":"TUdEUwE="},{"id":5,"sketch":"AA=="}]}]}`))
	f.Add([]byte(`{"v":1,"node":"n2","seq":18446744073709551615,"window_ns":1}`))
	f.Add([]byte(`{"v":2,"node":"n2","seq":1,"window_ns":1}`))
	f.Add([]byte(`{"v":1,"node":"n2","seq":1,"window_ns":1,"drift":[{"model":"m","version":1,"through":-9223372036854775808,"windows":[{"id":-9223372036854775808,"sketch":"AA=="}]}]}`))
	f.Add([]byte(`{"v":1,"node":"n2","seq":1,"window_ns":1,"drift":[{"model":"m","version":1,"through":3,"windows":[{"id":3,"sketch":"AA=="},{"id":3,"sketch":"AA=="}]}]}`))
	f.Add([]byte(`{"v":1} {}`))
	f.Add([]byte(`{"v":1,"node":"n2","seq":3,"boot":2,"window_ns":1,"counts":[{"model":"m","version":2,"served":9,"failed":1,"shadow_runs":0,"shadow_errors":0}],"stats":[{"kind":"cmp","model":"m","version":2,"against":1,"id":7,"window_ns":60000000000,"data":"TUdTQwE="},{"kind":"perf","model":"m","version":2,"id":7,"window_ns":60000000000,"data":"TUdWUAEAAA=="}]}`))
	f.Add([]byte(`{"v":1,"node":"n2","seq":3,"window_ns":1,"stats":[{"kind":"eval","model":"m","version":2,"against":1,"id":7,"window_ns":1,"data":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodeStatsPush(body)
		if err != nil {
			if p != nil {
				t.Fatal("an error with a push")
			}
			return
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("an accepted push does not encode: %v", err)
		}
		q, err := DecodeStatsPush(again)
		if err != nil {
			t.Fatalf("an accepted push, encoded, is refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the push:\n%+v\n%+v", p, q)
		}
	})
}

// FuzzMergePerf: a pushed perf window decodes or is refused, never
// panics, and adds nothing when refused; a window's own export merges back
// to the same export.
func FuzzMergePerf(f *testing.F) {
	w := perfWindow{lat: newPerfLatency()}
	for _, v := range []int64{1, 250, 250, 9000, 60_000_000} {
		_ = w.lat.RecordValue(v)
	}
	w.addScores([]float64{0, 0.04, 0.5, 0.97, 1, 3})
	good := w.appendExport(nil)
	f.Add(good)
	f.Add([]byte("MGVP\x01\x00\x00"))
	f.Add([]byte("MGVP\x02\x00\x00"))
	f.Add([]byte("MGVP\x01\x01\x13\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lat, scores := newPerfLatency(), make([]uint64, ScoreBins)
		if err := MergePerf(lat, scores, data); err != nil {
			if lat.TotalCount() != 0 || scores[0] != 0 {
				t.Fatal("a refused window added counts")
			}
			return
		}
		back := perfWindow{lat: lat}
		copy(back.scores[:], scores)
		if string(data) == string(good) && string(back.appendExport(nil)) != string(good) {
			t.Fatalf("round trip of a valid export changed it")
		}
	})
}
