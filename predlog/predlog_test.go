package predlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// mixedRecord has one tensor of each kind the codec treats apart.
func mixedRecord(id string, role Role) *Record {
	return &Record{
		RequestID: id, Model: "m/with/slashes", Version: "v2", Role: role,
		Time: 1_700_000_000_123_456_789, Node: "n1", Latency: 123456,
		Inputs: []Tensor{
			{Name: "amount", DataType: "FP64", Shape: []int64{2}, Data: binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, math.Float64bits(1.5)), math.Float64bits(-2))},
			{Name: "merchant", DataType: "BYTES", Shape: []int64{1, 2}, Strings: []string{"acme \"co\"", "é\n"}},
			{Name: "count", DataType: "INT64", Shape: []int64{}, Data: binary.LittleEndian.AppendUint64(nil, 7)},
			{Name: "flag", DataType: "BOOL", Shape: []int64{1}, Data: []byte{1}},
			{Name: "odd", DataType: "FP8E4M3", Shape: []int64{3}, Data: []byte{1, 2, 3}},
		},
		Outputs: []Tensor{{Name: "p", DataType: "FP32", Shape: []int64{1, 1}, Data: binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.25))}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, comp := range []ValueCompression{CompressNone, CompressZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			c := testConfig(t)
			c.ValueCompression = comp
			l := openLog(t, c)
			g := newDemoGen(1)
			var want []Record
			for i := 0; i < 200; i++ {
				r := g.next()
				var err error
				if i%10 == 0 {
					err = l.AppendDurable(r)
				} else {
					err = l.Append(r)
				}
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, cloneRecord(r))
			}
			mixed := mixedRecord("mixed-1", RoleCanary)
			if err := l.AppendDurable(mixed); err != nil {
				t.Fatal(err)
			}
			want = append(want, cloneRecord(mixed))
			check := func(l *Log) {
				t.Helper()
				for i := range want {
					got, err := l.Get(want[i].RequestID)
					if err != nil {
						t.Fatalf("Get(%q): %v", want[i].RequestID, err)
					}
					sameRecord(t, &got, &want[i])
					if got.Stamp == 0 {
						t.Fatal("Get left Stamp zero")
					}
				}
				if _, err := l.Get("no-such-id"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(unknown) = %v, want ErrNotFound", err)
				}
			}
			if err := closeLog(t, l); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, c)
			check(l)
			s := l.Stats()
			if s.Appended != 0 || s.Committed != 0 {
				t.Fatalf("fresh log has stats %+v", s)
			}
		})
	}
}

func TestGetPrefersServedAndLookupSeesAll(t *testing.T) {
	l := openLog(t, testConfig(t))
	shadow := mixedRecord("req-1", RoleShadow)
	shadow.Version = "v3"
	champ := mixedRecord("req-1", RoleChampion)
	for _, r := range []*Record{shadow, champ, mixedRecord("req-2", RoleChampion)} {
		if err := l.AppendDurable(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Get("req-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Role != RoleChampion || got.Version != "v2" {
		t.Fatalf("Get returned %s %s, want the champion v2", got.Role, got.Version)
	}
	var seen []string
	err = l.Lookup("req-1", func(r *Record) error {
		seen = append(seen, r.Role.String()+"/"+r.Version)
		return nil
	})
	if err != nil || fmt.Sprint(seen) != "[shadow/v3 champion/v2]" {
		t.Fatalf("Lookup saw %v, %v", seen, err)
	}
}

func TestInvalidRecords(t *testing.T) {
	l := openLog(t, testConfig(t))
	f := func(field string, mutate func(r *Record)) {
		t.Helper()
		r := mixedRecord("bad", RoleChampion)
		mutate(r)
		err := l.Append(r)
		var ie *InvalidError
		if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) || ie.Field != field {
			t.Fatalf("Append = %v, want an InvalidError on %s", err, field)
		}
	}
	f("model", func(r *Record) { r.Model = "" })
	f("model", func(r *Record) { r.Model = "a\x00b" })
	f("version", func(r *Record) { r.Version = "" })
	f("request_id", func(r *Record) { r.RequestID = "" })
	f("role", func(r *Record) { r.Role = RoleUnknown })
	f("latency", func(r *Record) { r.Latency = -1 })
	f("inputs", func(r *Record) { r.Inputs[0].Data = r.Inputs[0].Data[:3] })
	f("inputs", func(r *Record) { r.Inputs[0].Shape = []int64{-1} })
	f("inputs", func(r *Record) { r.Inputs[1].Strings = nil })
	if s := l.Stats(); s.Appended != 0 {
		t.Fatalf("invalid records were counted: %+v", s)
	}
}

func TestScanByVersionAndTime(t *testing.T) {
	l := openLog(t, testConfig(t))
	g := newDemoGen(2)
	start := time.Now()
	for i := 0; i < 30; i++ {
		r := g.next()
		r.Version = fmt.Sprint(i % 3)
		if err := l.AppendDurable(r); err != nil {
			t.Fatal(err)
		}
	}
	mid := time.Now()
	for i := 0; i < 30; i++ {
		r := g.next()
		r.Version = fmt.Sprint(i % 3)
		if err := l.AppendDurable(r); err != nil {
			t.Fatal(err)
		}
	}
	count := func(version string, from, to time.Time) int {
		n := 0
		var last int64
		err := l.Scan("fraud", version, from, to, func(r *Record) error {
			if version != "" && r.Version != version || r.Stamp <= last {
				t.Fatalf("Scan gave version %s stamp %d after %d", r.Version, r.Stamp, last)
			}
			last = r.Stamp
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	end := time.Now().Add(time.Second)
	if n := count("", start, end); n != 60 {
		t.Fatalf("all: %d rows", n)
	}
	if n := count("1", start, end); n != 20 {
		t.Fatalf("version 1: %d rows", n)
	}
	if n := count("2", start, mid); n != 10 {
		t.Fatalf("version 2 first half: %d rows", n)
	}
	if n := count("", mid, end); n != 30 {
		t.Fatalf("second half: %d rows", n)
	}
}

func TestNDJSON(t *testing.T) {
	row := Row{Record: *mixedRecord("id\"\x01\xff", RoleShadow), Labelled: true,
		Label: Label{Value: 1, Time: 1_700_000_001_000_000_000}, Cursor: makeCursor(false, 42)}
	row.Record.Model, row.Record.Version = "fraud", "3"
	row.Record.Outputs = append(row.Record.Outputs,
		Tensor{Name: "nan", DataType: "FP32", Shape: []int64{2}, Data: binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN()))), math.Float32bits(1e-7))},
		Tensor{Name: "h", DataType: "FP16", Shape: []int64{3}, Data: []byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00}},
		Tensor{Name: "b", DataType: "BF16", Shape: []int64{1}, Data: []byte{0x80, 0x3f}},
		Tensor{Name: "i8", DataType: "INT8", Shape: []int64{1}, Data: []byte{0xff}})
	line := AppendNDJSON(nil, &row)
	if line[len(line)-1] != '\n' || !json.Valid(line) {
		t.Fatalf("not one JSON line: %s", line)
	}
	var got struct {
		ID        string  `json:"id"`
		Role      string  `json:"role"`
		Time      string  `json:"time"`
		LatencyNS int64   `json:"latency_ns"`
		Label     float64 `json:"label"`
		Cursor    string  `json:"cursor"`
		Inputs    []struct {
			Name       string `json:"name"`
			Shape      []int  `json:"shape"`
			Data       []any  `json:"data"`
			DataBase64 string `json:"data_base64"`
		} `json:"inputs"`
		Outputs []struct {
			Data []any `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	f := func(i int, want string) {
		t.Helper()
		if s := fmt.Sprint(got.Outputs[i].Data); s != want {
			t.Fatalf("output %d data = %s, want %s", i, s, want)
		}
	}
	f(0, "[0.25]")
	f(1, "[<nil> 1e-07]")
	f(2, "[1 -2 5.9604645e-08]")
	f(3, "[1]")
	f(4, "[-1]")
	if fmt.Sprint(got.Inputs[0].Data) != "[1.5 -2]" || fmt.Sprint(got.Inputs[1].Data) != "[acme \"co\" é\n]" ||
		fmt.Sprint(got.Inputs[3].Data) != "[true]" || got.Inputs[4].DataBase64 != "AQID" || fmt.Sprint(got.Inputs[2].Shape) != "[]" {
		t.Fatalf("inputs: %+v", got.Inputs)
	}
	if got.ID != "id\"\x01\ufffd" || got.Role != "shadow" || got.Time != "2023-11-14T22:13:20.123456789Z" ||
		got.LatencyNS != 123456 || got.Label != 1 || got.Cursor != "p000000000000002a" {
		t.Fatalf("got %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(mutate func(c *Config), ok bool) {
		t.Helper()
		c := Config{Dir: "x"}
		mutate(&c)
		if err := c.Validate(); (err == nil) != ok {
			t.Fatalf("Validate(%+v) = %v", c, err)
		}
	}
	f(func(c *Config) {}, true)
	f(func(c *Config) { c.Dir = "" }, false)
	f(func(c *Config) { c.RingSize = -1 }, false)
	f(func(c *Config) { c.SyncInterval = time.Microsecond }, false)
	f(func(c *Config) { c.MaxAge = -1 }, true)
	f(func(c *Config) { c.MaxAge = time.Millisecond }, false)
	f(func(c *Config) { c.MaxBytes = -1 }, true)
	f(func(c *Config) { c.MaxBytes = 100 }, false)
	f(func(c *Config) { c.ValueCompression = 9 }, false)
	f(func(c *Config) { c.MemTableSize = 1 << 20; c.MaxBatchBytes = 1 << 20 }, false)
}
