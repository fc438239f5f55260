package registry

import "net/url"

// The bodies an alert webhook may be sent.
const (
	AlertFormatJSON  = "json"  // the lifecycle's alert event (the default)
	AlertFormatSlack = "slack" // {"text": …}, for a Slack incoming webhook
)

// AlertPolicy is where the lifecycle controller tells people what they must
// know: a rollback, a move waiting for approval, a drift alert. The POST is
// signed like the retraining request, with the secret SecretRef names in
// the node's configuration (never in the registry).
type AlertPolicy struct {
	// URL is the receiver, http or https, without credentials in it.
	URL string `json:"url"`
	// SecretRef names the signing secret. Required: an unsigned alert
	// could be forged by anyone who can reach the receiver.
	SecretRef string `json:"secret_ref"`
	// Format is "json" (default) or "slack".
	Format string `json:"format,omitempty"`
}

func (a *AlertPolicy) validate(path string) error {
	if err := checkText(path+".url", a.URL, 2048, true); err != nil {
		return err
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(path+".url", a.URL, "must be an absolute http or https URL")
	}
	if u.User != nil {
		return fieldErr(path+".url", u.Redacted(), "must not contain credentials; put the signing secret's name in secret_ref")
	}
	if !validSecretRef(a.SecretRef) {
		return fieldErr(path+".secret_ref", a.SecretRef, "must name the alert webhook's signing secret: 1-128 of A-Z a-z 0-9 . _ - /")
	}
	if a.Format != "" && a.Format != AlertFormatJSON && a.Format != AlertFormatSlack {
		return fieldErr(path+".format", a.Format, `must be "json" or "slack"`)
	}
	return nil
}
