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

// Sustained returns the alerts of a run of consecutive windows' reports
// (oldest first, all compared against the same profile): for every feature
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

// EvaluateRecent compares each of w's last closed windows (as many as the
// largest ConsecutiveWindows of th) with the windows' profile and returns
// Sustained's alerts and the reports, oldest first.
func EvaluateRecent(w *Windows, th Thresholds) ([]Alert, []*Report, error) {
	if err := th.Validate(); err != nil {
		return nil, nil, err
	}
	k := 1
	th.each(func(_ string, t *Threshold) bool {
		if t.Enabled {
			k = max(k, t.ConsecutiveWindows)
		}
		return true
	})
	sketches := w.Recent(k)
	reports := make([]*Report, len(sketches))
	for i, s := range sketches {
		r, err := Compare(w.prof, s, th)
		if err != nil {
			return nil, nil, err
		}
		reports[i] = r
	}
	return Sustained(reports, th), reports, nil
}
