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
