package onnxexport

import (
	"fmt"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/internal/train"
)

// LogisticProto builds the ModelProto of a logistic regression:
// features → Sub mean → Div std → MatMul [F,1] → Add bias → Sigmoid.
func LogisticProto(m *train.LogisticRegression, meta Metadata) (*onnxpb.ModelProto, error) {
	if err := checkScaler(m.Scaler); err != nil {
		return nil, fmt.Errorf("onnxexport: cannot export logistic regression: %w", err)
	}
	f := len(m.Scaler.Mean)
	if len(m.Weights) != f {
		return nil, fmt.Errorf("onnxexport: cannot export logistic regression: %w: %d weights for %d features",
			ErrInvalidModel, len(m.Weights), f)
	}
	if err := checkFinite("weights", append(m.Weights[:f:f], m.Bias)); err != nil {
		return nil, fmt.Errorf("onnxexport: cannot export logistic regression: %w", err)
	}
	if err := meta.validate(f); err != nil {
		return nil, fmt.Errorf("onnxexport: cannot export logistic regression: %w", err)
	}
	var g graphBuilder
	x := g.standardize(m.Scaler)
	logit := g.dense("logistic", x, m.Weights, []float32{m.Bias}, f, 1)
	g.node("Sigmoid", OutputName, logit)
	doc := fmt.Sprintf("Logistic regression over %d standardised features; %s is P(positive class).", f, OutputName)
	return g.model(&meta, ModelTypeLogistic, f, doc, nil), nil
}

// Logistic returns the ONNX bytes of a logistic regression (see
// LogisticProto).
func Logistic(m *train.LogisticRegression, meta Metadata) ([]byte, error) {
	p, err := LogisticProto(m, meta)
	if err != nil {
		return nil, err
	}
	return Marshal(p)
}
