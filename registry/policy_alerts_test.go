package registry

import (
	"errors"
	"testing"
)

// TestAlertPolicyValidate: a bad alert webhook is refused naming its field.
func TestAlertPolicyValidate(t *testing.T) {
	f := func(a AlertPolicy, field string) {
		t.Helper()
		p := DefaultPolicy()
		p.Alerts = &a
		err := p.Validate()
		var fe *FieldError
		switch {
		case field == "" && err != nil:
			t.Fatalf("%+v refused: %v", a, err)
		case field == "":
		case !errors.As(err, &fe) || fe.Field != field:
			t.Fatalf("%+v: got %v, want a refusal of %s", a, err, field)
		}
	}
	f(AlertPolicy{URL: "https://hooks.example/alerts", SecretRef: "alerts"}, "")
	f(AlertPolicy{URL: "https://hooks.example/alerts", SecretRef: "alerts", Format: "slack"}, "")
	f(AlertPolicy{URL: "", SecretRef: "alerts"}, "policy.alerts.url")
	f(AlertPolicy{URL: "ftp://x/y", SecretRef: "alerts"}, "policy.alerts.url")
	f(AlertPolicy{URL: "https://u:p@hooks.example/", SecretRef: "alerts"}, "policy.alerts.url")
	f(AlertPolicy{URL: "https://hooks.example/alerts"}, "policy.alerts.secret_ref")
	f(AlertPolicy{URL: "https://hooks.example/alerts", SecretRef: "alerts", Format: "pagerduty"}, "policy.alerts.format")
}
