package runtime

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX Runtime's model loading takes time quadratic in the number of
// metadata_props entries (measured with 1.30: 0.54 s for 2,500 entries,
// 2.2 s for 5,000, 7.0 s for 10,000, per session created), and every
// Introspect and every session pays it. ORT only ever gives those entries
// back through its metadata API, so the runtime reads them itself, in one
// linear pass over the protobuf's top level, and hands ORT the model
// without them once there are more than a handful.

// modelMetadataProps is ModelProto's metadata_props field number
// (repeated StringStringEntryProto, onnx.proto).
const modelMetadataProps = 14

// stripMetadataAbove is how many metadata entries ORT is still given the
// model with: below it the quadratic cost is negligible and not copying
// the model (up to hundreds of MB) is worth more.
const stripMetadataAbove = 64

// ortModelHook, when set (by tests only), sees every model's bytes right
// before ONNX Runtime parses them.
var ortModelHook func(onnx []byte)

// modelBytes is a model as ONNX Runtime is to parse it, and the custom
// metadata read from the original bytes.
type modelBytes struct {
	forORT []byte
	custom map[string]string
}

// prepareModel reads metadata_props off the wire and, when there are more
// than stripMetadataAbove of them, returns a copy of onnx without them for
// ORT. Bytes that are not a well-formed protobuf at the top level go to ORT
// unchanged, for its own parse error; custom is then nil. A key given twice
// keeps its last value, as ONNX Runtime does.
func prepareModel(onnx []byte) modelBytes {
	mb := modelBytes{forORT: onnx}
	n := 0
	for b := onnx; len(b) > 0; {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return mb
		}
		m := protowire.ConsumeFieldValue(num, typ, b[l:])
		if m < 0 {
			return mb
		}
		if num == modelMetadataProps && typ == protowire.BytesType {
			entry, _ := protowire.ConsumeBytes(b[l:])
			k, v, ok := parseEntry(entry)
			if !ok {
				return modelBytes{forORT: onnx}
			}
			if mb.custom == nil {
				mb.custom = map[string]string{}
			}
			mb.custom[k] = v
			n++
		}
		b = b[l+m:]
	}
	if n <= stripMetadataAbove {
		return mb
	}
	out := make([]byte, 0, len(onnx))
	for b := onnx; len(b) > 0; {
		num, typ, l := protowire.ConsumeTag(b)
		m := protowire.ConsumeFieldValue(num, typ, b[l:])
		if num != modelMetadataProps {
			out = append(out, b[:l+m]...)
		}
		b = b[l+m:]
	}
	mb.forORT = out
	return mb
}

// parseEntry decodes a StringStringEntryProto: key = 1, value = 2.
func parseEntry(b []byte) (k, v string, ok bool) {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return "", "", false
		}
		m := protowire.ConsumeFieldValue(num, typ, b[l:])
		if m < 0 {
			return "", "", false
		}
		if typ == protowire.BytesType && (num == 1 || num == 2) {
			s, _ := protowire.ConsumeBytes(b[l:])
			if num == 1 {
				k = string(s)
			} else {
				v = string(s)
			}
		}
		b = b[l+m:]
	}
	return k, v, true
}
