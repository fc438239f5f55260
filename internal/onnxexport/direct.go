package onnxexport

import ort "github.com/yalue/onnxruntime_go"

// RunDirect runs onnx on feeds through onnxruntime_go alone, ORT allocating
// the outputs: the reference that tests compare what modelgate serves with.
// It returns the output names and values; the caller destroys the values.
// ONNX Runtime must be initialised.
func RunDirect(onnx []byte, feeds []Feed) ([]string, []ort.Value, error) {
	_, outs, err := ort.GetInputOutputInfoWithONNXData(onnx)
	if err != nil {
		return nil, nil, err
	}
	var inNames, outNames []string
	var in []ort.Value
	defer func() {
		for _, v := range in {
			v.Destroy()
		}
	}()
	for _, f := range feeds {
		var v ort.Value
		if f.Int != nil {
			v, err = ort.NewTensor(ort.NewShape(f.Shape...), f.Int)
		} else {
			v, err = ort.NewTensor(ort.NewShape(f.Shape...), f.Float)
		}
		if err != nil {
			return nil, nil, err
		}
		in, inNames = append(in, v), append(inNames, f.Name)
	}
	for _, o := range outs {
		outNames = append(outNames, o.Name)
	}
	sess, err := ort.NewDynamicAdvancedSessionWithONNXData(onnx, inNames, outNames, nil)
	if err != nil {
		return nil, nil, err
	}
	defer sess.Destroy()
	out := make([]ort.Value, len(outNames))
	if err := sess.Run(in, out); err != nil {
		return nil, nil, err
	}
	return outNames, out, nil
}
