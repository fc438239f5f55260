package train

import "fmt"

// LogisticConfig configures FitLogistic. Zero values mean the defaults of
// DefaultLogisticConfig.
type LogisticConfig struct {
	// L2 is the ridge penalty on the weights (not the bias), per row:
	// the loss is mean log-loss + L2/2·|w|².
	L2 float64
	// LearningRate is Adam's initial step; it decays linearly to a tenth.
	LearningRate float64
	// Epochs is the number of passes over the data.
	Epochs int
	// BatchSize is the number of rows per gradient step.
	BatchSize int
	// Seed fixes the shuffle order.
	Seed int64
}

// DefaultLogisticConfig returns the settings the demo model uses.
func DefaultLogisticConfig() LogisticConfig {
	return LogisticConfig{L2: 1e-4, LearningRate: 0.02, Epochs: 8, BatchSize: 256}
}

// withDefaults fills zero fields.
func (c LogisticConfig) withDefaults() LogisticConfig {
	d := DefaultLogisticConfig()
	if c.L2 == 0 {
		c.L2 = d.L2
	}
	if c.LearningRate == 0 {
		c.LearningRate = d.LearningRate
	}
	if c.Epochs == 0 {
		c.Epochs = d.Epochs
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	return c
}

// Validate reports a field out of range, naming it and its value.
func (c LogisticConfig) Validate() error {
	return validateCommon(c.L2, c.LearningRate, c.Epochs, c.BatchSize)
}

// MLPConfig configures FitMLP. Zero values mean the defaults of
// DefaultMLPConfig.
type MLPConfig struct {
	// Hidden is the width of each hidden (ReLU) layer, input side first.
	Hidden []int
	// L2 is the weight decay on the weights (not the biases), per row.
	L2 float64
	// LearningRate is Adam's initial step; it decays linearly to a tenth.
	LearningRate float64
	// Epochs is the number of passes over the data.
	Epochs int
	// BatchSize is the number of rows per gradient step.
	BatchSize int
	// Seed fixes the initial weights and the shuffle order.
	Seed int64
}

// DefaultMLPConfig returns two hidden layers of 32 and settings that train
// the fraud data in a few epochs.
func DefaultMLPConfig() MLPConfig {
	return MLPConfig{Hidden: []int{32, 32}, L2: 1e-3, LearningRate: 3e-3, Epochs: 4, BatchSize: 128}
}

// withDefaults fills zero fields.
func (c MLPConfig) withDefaults() MLPConfig {
	d := DefaultMLPConfig()
	if len(c.Hidden) == 0 {
		c.Hidden = d.Hidden
	}
	if c.L2 == 0 {
		c.L2 = d.L2
	}
	if c.LearningRate == 0 {
		c.LearningRate = d.LearningRate
	}
	if c.Epochs == 0 {
		c.Epochs = d.Epochs
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	return c
}

// Validate reports a field out of range, naming it and its value.
func (c MLPConfig) Validate() error {
	for i, h := range c.Hidden {
		if h <= 0 {
			return fmt.Errorf("%w: Hidden[%d] (%d) must be positive", ErrInvalidConfig, i, h)
		}
	}
	return validateCommon(c.L2, c.LearningRate, c.Epochs, c.BatchSize)
}

func validateCommon(l2, lr float64, epochs, batch int) error {
	switch {
	case l2 < 0 || l2 != l2:
		return fmt.Errorf("%w: L2 (%v) must not be negative", ErrInvalidConfig, l2)
	case lr < 0 || lr != lr:
		return fmt.Errorf("%w: LearningRate (%v) must not be negative", ErrInvalidConfig, lr)
	case epochs < 0:
		return fmt.Errorf("%w: Epochs (%d) must not be negative", ErrInvalidConfig, epochs)
	case batch < 0:
		return fmt.Errorf("%w: BatchSize (%d) must not be negative", ErrInvalidConfig, batch)
	}
	return nil
}
