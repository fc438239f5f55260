package lifecycle

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/registry"
)

// TestEventJSON pins the wire shape receivers decode.
func TestEventJSON(t *testing.T) {
	ev := testEvent(t)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	want := `{"event":"drift","id":"` + ev.ID + `","time":"2026-11-27T12:03:00Z","model":"fraud","version":3,"report":{"count":5000,"reference_count":10000,"breach":true,"features":[`
	if !strings.HasPrefix(s, want) {
		t.Fatalf("event JSON:\n%s\nwant prefix\n%s", s, want)
	}
	if !strings.Contains(s, `"export_url":"http://127.0.0.1:8081/api/v1/models/fraud/export?labelled=true","alerts":[{"input":"features","index":2,"name":"amount_log","statistic":"psi","threshold":0.2,"values":[0.5,0.6,0.7]}]}`) {
		t.Fatalf("event JSON tail: %s", s)
	}
	// No alerts still encode as a list.
	empty, _ := NewDriftEvent("m", 1, time.Unix(0, 0), time.Unix(60, 0), nil, "", nil)
	if b, _ := json.Marshal(empty); !strings.Contains(string(b), `"alerts":[]`) {
		t.Fatalf("empty event: %s", b)
	}
}

func TestWebhookFromPolicy(t *testing.T) {
	w, err := WebhookFromPolicy(policyFor("https://retrain.example/hook"), testSecret)
	if err != nil || w.URL != "https://retrain.example/hook" || string(w.Secret) != string(testSecret) {
		t.Fatalf("%+v %v", w, err)
	}
	if _, err := WebhookFromPolicy(policyFor(""), testSecret); !errors.Is(err, ErrInvalidWebhook) {
		t.Fatalf("no url: %v", err)
	}
	if _, err := WebhookFromPolicy(policyFor("https://retrain.example/hook"), nil); !errors.Is(err, ErrInvalidWebhook) {
		t.Fatalf("no secret: %v", err)
	}
}

func policyFor(url string) registry.RetrainingPolicy {
	return registry.RetrainingPolicy{Enabled: true, URL: url, SecretRef: "retrain", Cooldown: registry.Duration(6 * time.Hour)}
}
