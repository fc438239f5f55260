package onnxexport

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/modelgate/modelgate/internal/onnxpb"
	"github.com/modelgate/modelgate/internal/train"
)

// MLPProto builds the ModelProto of an MLP: features → Sub mean → Div std,
// then MatMul/Add/Relu per hidden layer, then MatMul/Add → Sigmoid.
// The "hidden_layers" metadata property lists the hidden widths.
func MLPProto(m *train.MLP, meta Metadata) (*onnxpb.ModelProto, error) {
	if err := checkMLP(m); err != nil {
		return nil, fmt.Errorf("onnxexport: cannot export MLP: %w", err)
	}
	f := len(m.Scaler.Mean)
	if err := meta.validate(f); err != nil {
		return nil, fmt.Errorf("onnxexport: cannot export MLP: %w", err)
	}
	var g graphBuilder
	x := g.standardize(m.Scaler)
	widths := make([]string, len(m.Hidden))
	for i, l := range m.Hidden {
		x = g.dense("hidden"+strconv.Itoa(i), x, l.W, l.B, l.In, l.Out)
		x = g.node("Relu", "hidden"+strconv.Itoa(i)+"_relu", x)
		widths[i] = strconv.Itoa(l.Out)
	}
	logit := g.dense("output", x, m.Output.W, m.Output.B, m.Output.In, 1)
	g.node("Sigmoid", OutputName, logit)
	doc := fmt.Sprintf("MLP over %d standardised features, ReLU hidden layers [%s]; %s is P(positive class).",
		f, strings.Join(widths, ","), OutputName)
	more := [][2]string{{"hidden_layers", strings.Join(widths, ",")}}
	return g.model(&meta, ModelTypeMLP, f, doc, more), nil
}

// MLP returns the ONNX bytes of an MLP (see MLPProto).
func MLP(m *train.MLP, meta Metadata) ([]byte, error) {
	p, err := MLPProto(m, meta)
	if err != nil {
		return nil, err
	}
	return Marshal(p)
}

// checkMLP reports layers that do not chain from the features to one output.
func checkMLP(m *train.MLP) error {
	if err := checkScaler(m.Scaler); err != nil {
		return err
	}
	in := len(m.Scaler.Mean)
	layers := append(m.Hidden[:len(m.Hidden):len(m.Hidden)], m.Output)
	for i, l := range layers {
		name := "output layer"
		if i < len(m.Hidden) {
			name = "hidden layer " + strconv.Itoa(i)
		}
		switch {
		case l.In != in:
			return fmt.Errorf("%w: %s takes %d inputs, the previous layer gives %d", ErrInvalidModel, name, l.In, in)
		case l.Out <= 0 || len(l.W) != l.In*l.Out || len(l.B) != l.Out:
			return fmt.Errorf("%w: %s is %d→%d with %d weights and %d biases", ErrInvalidModel, name, l.In, l.Out, len(l.W), len(l.B))
		}
		if err := checkFinite(name+" weights", l.W); err != nil {
			return err
		}
		if err := checkFinite(name+" biases", l.B); err != nil {
			return err
		}
		in = l.Out
	}
	if m.Output.Out != 1 {
		return fmt.Errorf("%w: output layer has %d units, want 1", ErrInvalidModel, m.Output.Out)
	}
	return nil
}
