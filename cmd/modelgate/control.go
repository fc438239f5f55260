package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/validate"
	"github.com/modelgate/modelgate/registry"
)

// validator adapts the validation gate (a child `modelgate validate`) to
// the gateway. At most maxValidations children run at once: each may map
// up to opts.MaxMemory, and they share the node's cores with scoring.
func validator(opts validate.Options) gateway.Validator {
	sem := make(chan struct{}, maxValidations)
	return func(ctx context.Context, onnx []byte, golden json.RawMessage, budgetMs float64) (gateway.Validation, error) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		case <-ctx.Done():
			return gateway.Validation{}, ctx.Err()
		}
		o := opts
		if budgetMs > 0 {
			o.LatencyBudget = time.Duration(budgetMs * float64(time.Millisecond))
		}
		if len(golden) > 0 {
			pairs, err := validate.DecodeGolden(strings.NewReader(string(golden)))
			if err != nil {
				return gateway.Validation{Reason: "golden pairs: " + err.Error()}, nil
			}
			o.Golden = pairs
		}
		rep, err := validate.Run(ctx, onnx, o)
		if err != nil {
			return gateway.Validation{}, err
		}
		v := gateway.Validation{Passed: rep.Passed, Reason: rep.Reason}
		if rep.Signature != nil {
			for _, t := range rep.Signature.Inputs {
				v.Signature.Inputs = append(v.Signature.Inputs, registry.TensorSpec{Name: t.Name, DataType: t.Datatype, Shape: t.Shape})
			}
			for _, t := range rep.Signature.Outputs {
				v.Signature.Outputs = append(v.Signature.Outputs, registry.TensorSpec{Name: t.Name, DataType: t.Datatype, Shape: t.Shape})
			}
		}
		if !rep.Passed {
			// A version that failed records what it failed on, not a
			// signature the gate may only have half read.
			v.Signature = registry.Signature{}
		}
		ev, err := json.Marshal(rep)
		if err == nil && len(ev) <= registry.MaxEvidenceSize {
			v.Evidence = ev
		} else {
			v.Evidence = []byte(fmt.Sprintf(`{"note":"report too large to keep","passed":%t}`, rep.Passed))
		}
		return v, nil
	}
}

// maxValidations bounds concurrent validation children.
const maxValidations = 2
