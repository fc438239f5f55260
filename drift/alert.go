package drift

// Alert is one feature's statistic that breached its threshold in each of
// the last ConsecutiveWindows windows: what raises a drift alert.
type Alert struct {
	Input     string  `json:"input"`
	Index     int     `json:"index"`
	Name      string  `json:"name,omitempty"`
	Output    bool    `json:"output,omitempty"`
	Statistic string  `json:"statistic"`
	Threshold float64 `json:"threshold"`
	// Values are the statistic in each of those windows, oldest first.
	Values []float64 `json:"values"`
}

// Sustained returns the alerts of consecutive judgements' reports (oldest
// first, all compared against the same profile; one per window, or per run
// of pooled windows as Evaluate makes them): for every feature
// and every enabled statistic, an alert when the statistic breached in each
// of the last th.<statistic>.ConsecutiveWindows reports (0 counts as 1).
// Fewer reports than that raise nothing. Calling it after every window
// closes, an episode of drift raises alerts in every window it lasts; the
// caller's cooldown makes it one trigger.
func Sustained(reports []*Report, th Thresholds) []Alert {
	if len(reports) == 0 {
		return nil
	}
	var alerts []Alert
	last := reports[len(reports)-1]
	for i := range last.Features {
		f := &last.Features[i]
		th.each(func(name string, t *Threshold) bool {
			k := max(1, t.ConsecutiveWindows)
			if !t.Enabled || k > len(reports) {
				return true
			}
			values := make([]float64, 0, k)
			for _, r := range reports[len(reports)-k:] {
				if i >= len(r.Features) || !breached(&r.Features[i], name) {
					return true
				}
				v, _ := r.Features[i].Stat(name)
				values = append(values, v)
			}
			alerts = append(alerts, Alert{
				Input: f.Input, Index: f.Index, Name: f.Name, Output: f.Output,
				Statistic: name, Threshold: t.Threshold, Values: values,
			})
			return true
		})
	}
	return alerts
}

func breached(f *FeatureReport, stat string) bool {
	for _, b := range f.Breaches {
		if b == stat {
			return true
		}
	}
	return false
}

// EvaluateRecent is Evaluate under PolicyFromThresholds(th), returning its
// alerts and its runs' reports, oldest first: the judgement of the last
// closed windows, pooled until each run holds MinCount rows.
func EvaluateRecent(w *Windows, th Thresholds) ([]Alert, []*Report, error) {
	if err := th.Validate(); err != nil {
		return nil, nil, err
	}
	ev, err := Evaluate(w, PolicyFromThresholds(th))
	if err != nil {
		return nil, nil, err
	}
	return ev.Alerts, ev.Reports(), nil
}
