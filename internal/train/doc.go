// Package train fits the small fraud models modelgate ships as demos and
// uses in its tests and benchmarks: logistic regression and a multi-layer
// perceptron, in pure Go, with no dependencies.
//
// Both trainers standardise the features first (the fitted mean and
// standard deviation travel with the model, so the ONNX export can do the
// same inside the graph), train with mini-batch Adam, and are deterministic:
// the same data and Config give bit-identical weights, because the only
// randomness (the shuffle order and the MLP's initial weights) comes from
// Config.Seed and every sum runs in a fixed order.
//
// A model's Predict takes one raw (unstandardised) row and returns the
// probability of the positive class; AUC and LogLoss score a set of
// predictions against labels.
package train
