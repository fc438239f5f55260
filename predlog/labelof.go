package predlog

// LabelOf returns the label stored for a model's request id; false when
// there is none. The gateway asks before storing a label, so a label sent
// twice is evaluated once.
func (l *Log) LabelOf(model, requestID string) (Label, bool, error) {
	var lb Label
	if err := validName("model", model); err != nil {
		return lb, false, err
	}
	if len(requestID) == 0 || len(requestID) > maxName {
		return lb, false, nil
	}
	ok, err := l.getLabel(appendLabelKey(nil, model, requestID), &lb)
	return lb, ok, err
}
