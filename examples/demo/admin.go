package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// model is the one model the story is about.
const model = "fraud"

// admin calls the node's admin API with its admin token.
type admin struct {
	base   string
	token  string
	client *http.Client
}

func newAdmin(n *node) *admin {
	return &admin{base: "http://" + n.admin, token: n.token, client: &http.Client{Timeout: 30 * time.Second}}
}

// apiError is an admin API answer other than the one the demo expected.
type apiError struct {
	Call string
	Code int
	Body string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s answered %d: %.500s", e.Call, e.Code, e.Body)
}

// do sends one call and decodes a 2xx JSON answer into out (when not nil).
func (a *admin) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{Call: method + " " + path, Code: resp.StatusCode, Body: string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: cannot decode %.200q: %w", method, path, b, err)
		}
	}
	return nil
}

// registration is the metadata part of a version upload.
type registration struct {
	Lineage        lineage         `json:"lineage"`
	Profile        json.RawMessage `json:"profile,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Reason         string          `json:"reason,omitempty"`
}

// lineage is the registry's lineage as the upload takes it.
type lineage struct {
	DatasetURI      string             `json:"dataset_uri,omitempty"`
	DatasetVersion  string             `json:"dataset_version,omitempty"`
	DatasetDigest   string             `json:"dataset_digest,omitempty"`
	CodeRepo        string             `json:"code_repo,omitempty"`
	CodeCommit      string             `json:"code_commit,omitempty"`
	TrainingMetrics map[string]float64 `json:"training_metrics,omitempty"`
	ParentVersion   int                `json:"parent_version,omitempty"`
	Notes           string             `json:"notes,omitempty"`
}

// register uploads a version and returns its number.
func (a *admin) register(ctx context.Context, onnx []byte, meta registration) (int, error) {
	mj, err := json.Marshal(meta)
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("metadata", string(mj))
	part, _ := mw.CreateFormFile("model", model+".onnx")
	part.Write(onnx)
	mw.Close()
	var out struct {
		Version int `json:"version"`
	}
	if err := a.do(ctx, "POST", "/api/v1/models/"+model+"/versions", &buf, mw.FormDataContentType(), &out); err != nil {
		return 0, err
	}
	return out.Version, nil
}

// model reads the model: its aliases, versions and policy.
func (a *admin) model(ctx context.Context) (registry.Model, error) {
	var m registry.Model
	err := a.do(ctx, "GET", "/api/v1/models/"+model, nil, "", &m)
	return m, err
}

// version reads one version.
func (a *admin) version(ctx context.Context, v int) (registry.Version, error) {
	var out registry.Version
	err := a.do(ctx, "GET", "/api/v1/models/"+model+"/versions/"+strconv.Itoa(v), nil, "", &out)
	return out, err
}

// setPolicy replaces the model's policy.
func (a *admin) setPolicy(ctx context.Context, p registry.Policy, reason string) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return a.do(ctx, "PUT", "/api/v1/models/"+model+"/policy?reason="+url.QueryEscape(reason), bytes.NewReader(b), "application/json", nil)
}

// audit reads the model's audit records after seq since.
func (a *admin) audit(ctx context.Context, since uint64) ([]registry.AuditRecord, error) {
	var out struct {
		Records []registry.AuditRecord `json:"records"`
	}
	err := a.do(ctx, "GET", "/api/v1/audit?model="+model+"&since="+strconv.FormatUint(since, 10)+"&limit=1000", nil, "", &out)
	return out.Records, err
}

// postLabels sends a batch of ground-truth labels.
func (a *admin) postLabels(ctx context.Context, body []byte) error {
	return a.do(ctx, "POST", "/api/v1/models/"+model+"/labels", bytes.NewReader(body), "application/json", nil)
}
