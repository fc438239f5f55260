package gateway

import (
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/modelgate/modelgate/runtime"
)

// The metadata endpoints are not on the hot path, so they use encoding/json.

type serverMeta struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
	Runtime    string   `json:"onnxruntime_version"`
	Node       string   `json:"node"`
}

func (s *Server) serverMetadata(ctx *fasthttp.RequestCtx) {
	writeValue(ctx, fasthttp.StatusOK, serverMeta{
		Name:       "modelgate",
		Version:    s.cfg.Version,
		Extensions: []string{"binary_tensor_data"},
		Runtime:    runtime.Version(),
		Node:       s.cfg.Node,
	})
}

type tensorMeta struct {
	Name     string  `json:"name"`
	DataType string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

type modelMeta struct {
	Name     string            `json:"name"`
	Versions []string          `json:"versions"`
	Version  string            `json:"version"`
	Platform string            `json:"platform"`
	Inputs   []tensorMeta      `json:"inputs"`
	Outputs  []tensorMeta      `json:"outputs"`
	Metadata map[string]string `json:"parameters,omitempty"`
}

func specs(ts []runtime.TensorSpec) []tensorMeta {
	out := make([]tensorMeta, len(ts))
	for i, t := range ts {
		out[i] = tensorMeta{Name: t.Name, DataType: t.DataType.String(), Shape: t.Shape}
	}
	return out
}

// lookup finds a model's version (the champion when version is empty) and
// writes the 404/503 itself when there is none.
func (s *Server) lookup(ctx *fasthttp.RequestCtx, model, version []byte) (*route, *runtime.Slot) {
	r := s.Catalog.table().Model(string(model))
	if r == nil {
		writeError(ctx, fasthttp.StatusNotFound, "model "+strconv.Quote(string(model))+" not found")
		return nil, nil
	}
	if len(version) > 0 {
		v := r.Version(string(version))
		if v == nil {
			writeError(ctx, fasthttp.StatusNotFound, "model "+strconv.Quote(r.Name)+" has no version "+strconv.Quote(string(version))+" on this node")
			return r, nil
		}
		return r, v.Slot
	}
	if r.Champion == nil {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "model "+strconv.Quote(r.Name)+" has no ready version")
		return r, nil
	}
	return r, r.Champion.Slot
}

func (s *Server) modelMetadata(ctx *fasthttp.RequestCtx, model, version []byte) {
	r, slot := s.lookup(ctx, model, version)
	if slot == nil {
		return
	}
	sig := slot.Model.Signature()
	md := map[string]string{}
	for k, v := range sig.Metadata.Custom {
		md[k] = v
	}
	if sig.Metadata.Producer != "" {
		md["producer"] = sig.Metadata.Producer
	}
	if sig.Metadata.Description != "" {
		md["description"] = sig.Metadata.Description
	}
	writeValue(ctx, fasthttp.StatusOK, modelMeta{
		Name:     r.Name,
		Versions: versionNames(r),
		Version:  slot.Version,
		Platform: "onnxruntime_onnx",
		Inputs:   specs(sig.Inputs),
		Outputs:  specs(sig.Outputs),
		Metadata: md,
	})
}

func (s *Server) modelReady(ctx *fasthttp.RequestCtx, model, version []byte) {
	r, slot := s.lookup(ctx, model, version)
	if slot == nil {
		return
	}
	writeValue(ctx, fasthttp.StatusOK, struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Ready   bool   `json:"ready"`
	}{r.Name, slot.Version, true})
}

// versionNames lists a model's loaded versions in version order.
func versionNames(r *route) []string {
	vs := r.Versions()
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Slot.Version
	}
	return names
}

func writeValue(ctx *fasthttp.RequestCtx, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "cannot encode the response: "+err.Error())
		return
	}
	ctx.SetStatusCode(code)
	ctx.SetContentTypeBytes(contentJSON)
	ctx.SetBody(b)
}
