package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/internal/artifact"
	"github.com/modelgate/modelgate/registry"
)

// The admin listener streams request bodies (fasthttp's StreamRequestBody):
// its handler runs once the headers are in, so a token and a route's limit
// are checked before any of the body is read. An unauthenticated client
// cannot make the node buffer anything, and a model upload goes from the
// socket to the artifact store a chunk at a time.

// uploadSlack is what a registration body may carry beyond the model: its
// metadata (at most a registry command's size) and the multipart framing.
const uploadSlack = registry.MaxCommandSize + 64<<10

// uploadLimit is the largest registration body.
func (s *Server) uploadLimit() int64 { return s.cfg.MaxModelBytes + uploadSlack }

// readAPIBody enforces route r's body limit and, except for uploads (which
// their handler streams), reads the body into memory for the handler. It
// answers the request itself and reports false when the body is refused.
func (s *Server) readAPIBody(ctx *fasthttp.RequestCtx, r *apiRoute) bool {
	limit := int64(r.maxBody)
	switch r.maxBody {
	case 0:
		limit = smallBody
	case bodyUpload:
		limit = s.uploadLimit()
	}
	declared := int64(ctx.Request.Header.ContentLength()) // -1: chunked
	if declared > limit {
		s.bodyTooLarge(ctx, r, limit, declared)
		return false
	}
	if r.maxBody == bodyUpload {
		return true
	}
	stream := ctx.RequestBodyStream()
	if stream == nil { // a body already in memory (a RequestCtx built in process)
		if n := int64(len(ctx.Request.Body())); n > limit {
			s.bodyTooLarge(ctx, r, limit, n)
			return false
		}
		return true
	}
	buf := make([]byte, 0, max(min(declared, limit), 512))
	n, err := readInto(&buf, io.LimitReader(stream, limit+1))
	switch {
	case n > limit:
		s.bodyTooLarge(ctx, r, limit, -1)
		return false
	case err != nil:
		bodyReadError(ctx, err)
		return false
	}
	// Raw: the buffer is this request's own, not fasthttp's pooled one, so
	// a large body is garbage once the request is answered.
	ctx.Request.SetBodyRaw(buf)
	return true
}

func readInto(buf *[]byte, r io.Reader) (int64, error) {
	b := bytes.NewBuffer(*buf)
	n, err := b.ReadFrom(r)
	*buf = b.Bytes()
	return n, err
}

// bodyTooLarge answers 413 naming route r's own limit; n is the body's
// size when known, else -1.
func (s *Server) bodyTooLarge(ctx *fasthttp.RequestCtx, r *apiRoute, limit, n int64) {
	msg := "request body too large"
	if n >= 0 {
		msg += " (" + itoa64(n) + " bytes)"
	}
	if r.maxBody == bodyUpload {
		msg += ": a registration takes a model of at most " + itoa64(s.cfg.MaxModelBytes) + " bytes (serve --max-model-bytes) and its metadata, " + itoa64(limit) + " bytes in all"
	} else {
		msg += ": " + r.method + " /" + strings.Join(r.pattern, "/") + " takes at most " + itoa64(limit) + " bytes"
	}
	s.Metrics.errorCounter("", fasthttp.StatusRequestEntityTooLarge).Inc()
	writeError(ctx, fasthttp.StatusRequestEntityTooLarge, msg)
	// The body stays unread: the connection closes after the answer.
	ctx.SetConnectionClose()
}

func bodyReadError(ctx *fasthttp.RequestCtx, err error) {
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		writeError(ctx, fasthttp.StatusRequestTimeout, "timed out reading the request body")
		return
	}
	writeError(ctx, fasthttp.StatusBadRequest, "cannot read the request body: "+err.Error())
}

// upload is a registration's parts, with the model already stored.
type upload struct {
	meta   registerMeta
	digest string
	size   int64
}

// readUpload reads a registration — multipart/form-data with `metadata`
// (JSON) and `model` (the ONNX file), in either order — streaming the
// model into the artifact store. It answers the request itself and
// reports false when the upload is refused.
func (s *Server) readUpload(ctx *fasthttp.RequestCtx) (upload, bool) {
	var up upload
	const want = "want a multipart/form-data body with parts model (the ONNX file) and metadata (JSON)"
	_, params, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	if err != nil || params["boundary"] == "" {
		writeError(ctx, fasthttp.StatusBadRequest, want+": the Content-Type has no multipart boundary")
		return up, false
	}
	var body io.Reader = ctx.RequestBodyStream()
	if body == nil {
		body = bytes.NewReader(ctx.Request.Body())
	}
	// What the declared length already bounded is bounded again for
	// chunked bodies.
	limited := &io.LimitedReader{R: body, N: s.uploadLimit() + 1}
	mr := multipart.NewReader(limited, params["boundary"])
	models := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			s.uploadError(ctx, limited, want+": "+err.Error(), err)
			return up, false
		}
		switch part.FormName() {
		case "metadata":
			raw, err := io.ReadAll(io.LimitReader(part, registry.MaxCommandSize+1))
			switch {
			case err != nil:
				s.uploadError(ctx, limited, "cannot read the metadata part: "+err.Error(), err)
				return up, false
			case len(raw) > registry.MaxCommandSize:
				writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "metadata: larger than "+itoa64(registry.MaxCommandSize)+" bytes")
				ctx.SetConnectionClose()
				return up, false
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&up.meta); err != nil {
				writeError(ctx, fasthttp.StatusBadRequest, "metadata: "+err.Error())
				ctx.SetConnectionClose()
				return up, false
			}
		case "model":
			if models++; models > 1 {
				writeError(ctx, fasthttp.StatusBadRequest, "want exactly one part named model holding the ONNX file")
				ctx.SetConnectionClose()
				return up, false
			}
			src := &readRecorder{r: part}
			model := &io.LimitedReader{R: src, N: s.cfg.MaxModelBytes + 1}
			up.digest, up.size, err = s.artifacts.Put(model)
			var tl *artifact.TooLargeError
			switch {
			case errors.As(err, &tl) || err == nil && model.N == 0:
				s.Metrics.errorCounter("", fasthttp.StatusRequestEntityTooLarge).Inc()
				writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "model too large: the limit is "+itoa64(min(s.cfg.MaxModelBytes, storeLimit(tl)))+" bytes (serve --max-model-bytes)")
				ctx.SetConnectionClose()
				return up, false
			case src.err != nil:
				s.uploadError(ctx, limited, "cannot read the model part: "+src.err.Error(), src.err)
				return up, false
			case err != nil:
				writeError(ctx, fasthttp.StatusInternalServerError, "cannot store the model: "+err.Error())
				ctx.SetConnectionClose()
				return up, false
			}
		default:
			// Unknown parts are skipped, not kept: the body limit bounds them.
			if _, err := io.Copy(io.Discard, part); err != nil {
				s.uploadError(ctx, limited, want+": "+err.Error(), err)
				return up, false
			}
		}
	}
	if models != 1 {
		writeError(ctx, fasthttp.StatusBadRequest, "want exactly one part named model holding the ONNX file")
		return up, false
	}
	return up, true
}

// uploadError answers a registration body that could not be read: 413
// when it ran past the limit (chunked bodies have no length to check up
// front), 408 on a read timeout, else 400 with msg.
func (s *Server) uploadError(ctx *fasthttp.RequestCtx, limited *io.LimitedReader, msg string, err error) {
	ctx.SetConnectionClose()
	if limited.N <= 0 {
		s.Metrics.errorCounter("", fasthttp.StatusRequestEntityTooLarge).Inc()
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, "request body too large: a registration takes a model of at most "+itoa64(s.cfg.MaxModelBytes)+" bytes (serve --max-model-bytes) and its metadata, "+itoa64(s.uploadLimit())+" bytes in all")
		return
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		writeError(ctx, fasthttp.StatusRequestTimeout, "timed out reading the upload")
		return
	}
	writeError(ctx, fasthttp.StatusBadRequest, msg)
}

// readRecorder keeps the first read error of r, so a failed Put can be
// told apart: the client's upload broke (400, 408, 413) or the store
// failed (500).
type readRecorder struct {
	r   io.Reader
	err error
}

func (rr *readRecorder) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

func storeLimit(tl *artifact.TooLargeError) int64 {
	if tl == nil || tl.Limit <= 0 {
		return 1<<63 - 1
	}
	return tl.Limit
}

func itoa64(n int64) string { return itoa(int(n)) }
