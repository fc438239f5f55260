// Package onnxexport writes the models of package train as ONNX ModelProto
// bytes that ONNX Runtime loads and modelgate serves.
//
// Every graph has one input, InputName, FP32 of shape [batch, F] (batch a
// dynamic dimension named BatchDim), and one output, OutputName, FP32 of
// shape [batch, 1]: the positive-class probability. Standardisation happens
// inside the graph (Sub the training mean, Div by the training standard
// deviation), so callers send raw features. Logistic regression is then
// MatMul [F,1] + Add bias → Sigmoid; an MLP is MatMul/Add/Relu per hidden
// layer, then MatMul/Add → Sigmoid.
//
// Graphs use IRVersion and the default-domain opset OpsetVersion. The bytes
// are deterministic: the same weights and Metadata give the same bytes, so
// a model's sha256 digest identifies its content.
package onnxexport
