package oip

import "github.com/modelgate/modelgate/internal/jsonw"

// AppendError appends the OIP error body {"error":"…"}.
func AppendError(dst []byte, msg string) []byte {
	dst = append(dst, `{"error":`...)
	dst = jsonw.AppendString(dst, msg)
	return append(dst, '}')
}
