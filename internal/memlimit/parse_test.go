package memlimit

import "testing"

func TestParseBytes(t *testing.T) {
	f := func(s string, want int64, ok bool) {
		t.Helper()
		got, err := ParseBytes(s)
		if (err == nil) != ok || got != want {
			t.Fatalf("ParseBytes(%q) = %d, %v; want %d, ok %v", s, got, err, want, ok)
		}
	}
	f("0", 0, true)
	f("1048576", 1<<20, true)
	f("4GiB", 4<<30, true)
	f("512 MiB", 512<<20, true)
	f("64KiB", 64<<10, true)
	f("2GB", 2e9, true)
	f("10B", 10, true)
	f("", 0, false)
	f("-1", 0, false)
	f("1.5GiB", 0, false)
	f("lots", 0, false)
	f("9999999999999TiB", 0, false)
}
