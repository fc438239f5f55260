package predlog

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/internal/float16"
	"github.com/modelgate/modelgate/internal/jsonw"
)

// AppendNDJSON appends row as one line of JSON, newline included, and
// returns the extended buffer. It does not allocate beyond growing dst. The
// line is
//
//	{"id":"…","model":"…","version":"…","role":"champion","time":"2026-…Z",
//	 "node":"…","latency_ns":812345,
//	 "inputs":[{"name":"features","datatype":"FP32","shape":[1,30],"data":[0.5,…]}],
//	 "outputs":[…],"label":1,"label_time":"…","cursor":"…"}
//
// with data as a flat array of numbers (booleans for BOOL, strings for
// BYTES, null for NaN and infinities; a datatype this package does not know
// gets "data_base64" instead), and the label fields only on labelled rows.
// Times are RFC 3339 in UTC with nanoseconds.
func AppendNDJSON(dst []byte, row *Row) []byte {
	r := &row.Record
	dst = append(dst, `{"id":`...)
	dst = jsonw.AppendString(dst, r.RequestID)
	dst = append(dst, `,"model":`...)
	dst = jsonw.AppendString(dst, r.Model)
	dst = append(dst, `,"version":`...)
	dst = jsonw.AppendString(dst, r.Version)
	dst = append(dst, `,"role":"`...)
	dst = append(dst, r.Role.String()...)
	dst = append(dst, `","time":`...)
	dst = appendJSONTime(dst, r.Time)
	dst = append(dst, `,"node":`...)
	dst = jsonw.AppendString(dst, r.Node)
	dst = append(dst, `,"latency_ns":`...)
	dst = strconv.AppendInt(dst, r.Latency, 10)
	dst = append(dst, `,"inputs":`...)
	dst = appendJSONTensors(dst, r.Inputs)
	dst = append(dst, `,"outputs":`...)
	dst = appendJSONTensors(dst, r.Outputs)
	if row.Labelled {
		dst = append(dst, `,"label":`...)
		dst = appendJSONFloat(dst, row.Label.Value, 64)
		dst = append(dst, `,"label_time":`...)
		dst = appendJSONTime(dst, row.Label.Time)
	}
	if row.Cursor != "" {
		dst = append(dst, `,"cursor":"`...)
		dst = append(dst, row.Cursor...)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

func appendJSONTime(dst []byte, unixNano int64) []byte {
	dst = append(dst, '"')
	dst = time.Unix(0, unixNano).UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

func appendJSONTensors(dst []byte, ts []Tensor) []byte {
	dst = append(dst, '[')
	for i := range ts {
		if i > 0 {
			dst = append(dst, ',')
		}
		t := &ts[i]
		dst = append(dst, `{"name":`...)
		dst = jsonw.AppendString(dst, t.Name)
		dst = append(dst, `,"datatype":`...)
		dst = jsonw.AppendString(dst, t.DataType)
		dst = append(dst, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, d, 10)
		}
		code := typeCode(t.DataType)
		if code == typeOther {
			dst = append(dst, `],"data_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, t.Data)
			dst = append(dst, `"}`...)
			continue
		}
		dst = append(dst, `],"data":[`...)
		dst = appendJSONData(dst, t, code)
		dst = append(dst, "]}"...)
	}
	return append(dst, ']')
}

func appendJSONData(dst []byte, t *Tensor, code byte) []byte {
	if code == typeBytes {
		for i, s := range t.Strings {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonw.AppendString(dst, s)
		}
		return dst
	}
	w := typeWidths[code]
	le := binary.LittleEndian
	for i := 0; i+w <= len(t.Data); i += w {
		if i > 0 {
			dst = append(dst, ',')
		}
		p := t.Data[i:]
		switch code {
		case tBool:
			dst = strconv.AppendBool(dst, p[0] != 0)
		case tUint8:
			dst = strconv.AppendUint(dst, uint64(p[0]), 10)
		case tUint16:
			dst = strconv.AppendUint(dst, uint64(le.Uint16(p)), 10)
		case tUint32:
			dst = strconv.AppendUint(dst, uint64(le.Uint32(p)), 10)
		case tUint64:
			dst = strconv.AppendUint(dst, le.Uint64(p), 10)
		case tInt8:
			dst = strconv.AppendInt(dst, int64(int8(p[0])), 10)
		case tInt16:
			dst = strconv.AppendInt(dst, int64(int16(le.Uint16(p))), 10)
		case tInt32:
			dst = strconv.AppendInt(dst, int64(int32(le.Uint32(p))), 10)
		case tInt64:
			dst = strconv.AppendInt(dst, int64(le.Uint64(p)), 10)
		case tFP16:
			dst = appendJSONFloat(dst, float64(float16.ToFloat32(le.Uint16(p))), 32)
		case tBF16:
			dst = appendJSONFloat(dst, float64(math.Float32frombits(uint32(le.Uint16(p))<<16)), 32)
		case tFP32:
			dst = appendJSONFloat(dst, float64(math.Float32frombits(le.Uint32(p))), 32)
		case tFP64:
			dst = appendJSONFloat(dst, math.Float64frombits(le.Uint64(p)), 64)
		}
	}
	return dst
}

func appendJSONFloat(dst []byte, v float64, bitSize int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, bitSize)
}
