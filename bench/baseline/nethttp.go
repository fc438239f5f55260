package baseline

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	ort "github.com/yalue/onnxruntime_go"
)

// The NetHTTP baseline's wire types: the OIP request and response as a Go
// team would declare them for encoding/json.
type (
	inferRequest struct {
		ID      string            `json:"id,omitempty"`
		Inputs  []requestTensor   `json:"inputs"`
		Outputs []requestedOutput `json:"outputs,omitempty"`
	}
	requestTensor struct {
		Name     string    `json:"name"`
		Shape    []int64   `json:"shape"`
		Datatype string    `json:"datatype"`
		Data     []float32 `json:"data"`
	}
	requestedOutput struct {
		Name string `json:"name"`
	}
	inferResponse struct {
		ModelName    string           `json:"model_name"`
		ModelVersion string           `json:"model_version"`
		ID           string           `json:"id,omitempty"`
		Outputs      []responseTensor `json:"outputs"`
	}
	responseTensor struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float32 `json:"data"`
	}
	errorResponse struct {
		Error string `json:"error"`
	}
)

// maxRows bounds the rows of one NetHTTP request.
const maxRows = 1 << 20

// netHandler is the NetHTTP baseline's request handler.
type netHandler struct {
	shape
	sessions chan *ort.DynamicAdvancedSession // idle sessions
	all      []*ort.DynamicAdvancedSession
	ids      *ids
}

func newNetHandler(cfg Config, sh shape) (*netHandler, error) {
	h := &netHandler{shape: sh, sessions: make(chan *ort.DynamicAdvancedSession, cfg.Sessions), ids: newIDs()}
	opts, err := sessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	for range cfg.Sessions {
		s, err := ort.NewDynamicAdvancedSessionWithONNXData(cfg.Model, []string{sh.input}, []string{sh.output}, opts)
		if err != nil {
			_ = h.destroy()
			return nil, fmt.Errorf("baseline: cannot create an ORT session: %w", err)
		}
		h.all = append(h.all, s)
		h.sessions <- s
	}
	return h, nil
}

// destroy frees every session; no request may be in flight.
func (h *netHandler) destroy() error {
	var errs []error
	for _, s := range h.all {
		errs = append(errs, s.Destroy())
	}
	h.all = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

// mux routes the NetHTTP baseline's endpoints.
func (h *netHandler) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ready": true})
	})
	m.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	m.HandleFunc("POST /v2/models/{model}/infer", h.infer)
	m.HandleFunc("POST /v2/models/{model}/versions/{version}/infer", h.infer)
	return m
}

// infer answers one inference request of any number of rows.
func (h *netHandler) infer(w http.ResponseWriter, r *http.Request) {
	var req inferRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "baseline: request body is larger than "+strconv.Itoa(maxBody)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "baseline: invalid request: "+err.Error())
		return
	}
	rows, msg := h.check(&req)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	probs, err := h.run(req.Inputs[0].Data, rows)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	id := req.ID
	if id == "" {
		id = string(h.ids.next(nil))
	}
	writeJSON(w, http.StatusOK, inferResponse{
		ModelName:    r.PathValue("model"),
		ModelVersion: Version,
		ID:           id,
		Outputs: []responseTensor{{
			Name:     h.output,
			Datatype: "FP32",
			Shape:    []int64{int64(rows), int64(h.width)},
			Data:     probs,
		}},
	})
}

// check returns the request's row count, or why it cannot be served.
func (h *netHandler) check(req *inferRequest) (int, string) {
	if len(req.Inputs) != 1 {
		return 0, fmt.Sprintf("baseline: want exactly one input, %q, got %d", h.input, len(req.Inputs))
	}
	in := &req.Inputs[0]
	if in.Name != h.input {
		return 0, fmt.Sprintf("baseline: unknown input %q: the model's input is %q", in.Name, h.input)
	}
	if in.Datatype != "FP32" {
		return 0, fmt.Sprintf("baseline: input %q is %q, want FP32", in.Name, in.Datatype)
	}
	if len(in.Shape) != 2 || in.Shape[0] < 1 || in.Shape[0] > maxRows || in.Shape[1] != int64(h.features) {
		return 0, fmt.Sprintf("baseline: input %q has shape %v, want [N,%d]", in.Name, in.Shape, h.features)
	}
	rows := int(in.Shape[0])
	if len(in.Data) != rows*h.features {
		return 0, fmt.Sprintf("baseline: input %q has %d values, want %d (shape %v, flat data)", in.Name, len(in.Data), rows*h.features, in.Shape)
	}
	for _, o := range req.Outputs {
		if o.Name != h.output {
			return 0, fmt.Sprintf("baseline: unknown output %q: the model's output is %q", o.Name, h.output)
		}
	}
	return rows, ""
}

// run scores rows rows of data on an idle session, with tensors made for
// this call.
func (h *netHandler) run(data []float32, rows int) ([]float32, error) {
	in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(h.features)), data)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer in.Destroy()
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), int64(h.width)))
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	defer out.Destroy()
	s := <-h.sessions
	err = s.Run([]ort.Value{in}, []ort.Value{out})
	h.sessions <- s
	if err != nil {
		return nil, fmt.Errorf("baseline: ONNX Runtime: %w", err)
	}
	return append([]float32(nil), out.GetData()...), nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // NaN or infinite outputs: JSON cannot say them
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorResponse{Error: "baseline: cannot encode the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}
