package bench

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/internal/fraud"
)

// Duration is a time.Duration that reads from JSON as a Go duration string
// ("1.5s", "200ms") or a number of seconds, and writes as a string.
type Duration time.Duration

// MarshalJSON writes the duration as a string ("1.5s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "1.5s" or 1.5 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("bench: cannot parse duration %q: %w", str, err)
		}
		*d = Duration(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("bench: cannot parse duration %s: want \"1.5s\" or seconds", s)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// Phase is one stretch of load. Rate > 0 makes it open loop (Connections is
// then the most requests in flight; 0 picks a default from the rate);
// otherwise it is closed loop over Connections connections.
type Phase struct {
	Name        string   `json:"name"`
	Duration    Duration `json:"duration"`
	Rate        float64  `json:"rate,omitempty"`
	Poisson     bool     `json:"poisson,omitempty"`
	Connections int      `json:"connections,omitempty"`
	// Drift sends bodies from the drifted generator during this phase.
	Drift bool `json:"drift,omitempty"`
}

// open reports whether the phase is open loop.
func (p Phase) open() bool { return p.Rate > 0 }

// concurrency is the number of workers (and connections) the phase uses.
func (p Phase) concurrency() int {
	if p.Connections > 0 {
		return p.Connections
	}
	if p.open() {
		// Enough workers to keep the rate through a 250 ms stall.
		return min(max(16, int(p.Rate/4)), 4096)
	}
	return 1
}

// Action kinds a scenario can fire.
const (
	ActionRegister = "register"  // POST versions (multipart: File, optional Metadata)
	ActionPromote  = "promote"   // POST /promote {"version":V}
	ActionRollback = "rollback"  // POST /rollback
	ActionCanary   = "canary"    // POST /versions/V/stage {"stage":"canary","weight":W}
	ActionStage    = "stage"     // POST /versions/V/stage {"stage":Stage}
	ActionKill     = "kill"      // SIGKILL the node process Node
	ActionStart    = "start"     // start the node process Node
	ActionRestart  = "restart"   // kill (if running) then start Node
	ActionDriftOn  = "drift_on"  // send drifted bodies from now on
	ActionDriftOff = "drift_off" // send undrifted bodies from now on
)

// Action is something a scenario does at a given time (At, from the start
// of the run). Version 0 means the version the last register action
// created.
type Action struct {
	At       Duration `json:"at"`
	Do       string   `json:"do"`
	Model    string   `json:"model,omitempty"` // default: Config.Model
	Version  int      `json:"version,omitempty"`
	Weight   float64  `json:"weight,omitempty"`
	Stage    string   `json:"stage,omitempty"`
	File     string   `json:"file,omitempty"`
	Metadata string   `json:"metadata,omitempty"`
	Node     string   `json:"node,omitempty"`
	Reason   string   `json:"reason,omitempty"`
}

// Node is a process the harness may start, kill and restart: Cmd is its
// command line (Cmd[0] looked up in PATH). Start launches it when the run
// begins; it is always stopped when the run ends.
type Node struct {
	Cmd   []string `json:"cmd"`
	Dir   string   `json:"dir,omitempty"`
	Start bool     `json:"start,omitempty"`
	// Wait is how long to wait after starting it before going on.
	Wait Duration `json:"wait,omitempty"`
}

// Scenario is what a scenario file holds.
type Scenario struct {
	Name    string          `json:"name"`
	Phases  []Phase         `json:"phases"`
	Actions []Action        `json:"actions,omitempty"`
	Nodes   map[string]Node `json:"nodes,omitempty"`
}

// LoadScenario reads a scenario from a JSON file, rejecting unknown fields.
func LoadScenario(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: cannot read scenario: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: scenario %s: %v", ErrInvalidConfig, path, err)
	}
	return &s, nil
}

// Config is one bench run. Zero values mean their defaults (DefaultConfig).
type Config struct {
	// Label names the system under test in the report ("gateway", "bare").
	Label string `json:"label,omitempty"`
	// Target is the scoring endpoint's base URL (http://127.0.0.1:8080).
	Target string `json:"target"`
	// Model is the model scored: POST {Target}/v2/models/{Model}/infer.
	Model string `json:"model"`
	// ScoreToken, when set, is sent as a bearer token with every request.
	ScoreToken string `json:"-"`
	// Admin and Token reach the admin API for actions and labels.
	Admin string `json:"admin,omitempty"`
	Token string `json:"-"`

	// Scenario: the phases and actions. A plain run is one phase.
	Scenario Scenario `json:"scenario"`

	// Rows per request (generated bodies), Seed of the generator, Ring the
	// number of distinct bodies per ring, Accounts the routing-key pool.
	Rows     int   `json:"rows"`
	Seed     int64 `json:"seed"`
	Ring     int   `json:"ring"`
	Accounts int   `json:"accounts"`
	// Drift is what the drifted ring draws (default: covariate shift of
	// the amount, x3).
	Drift fraud.Drift `json:"drift"`
	// BodyFile, when set, replaces generated bodies: one OIP JSON body per
	// line.
	BodyFile string `json:"body_file,omitempty"`

	// LabelFraction of requests get their label POSTed LabelDelay after
	// the answer (needs Admin; generated bodies only).
	LabelFraction float64  `json:"label_fraction,omitempty"`
	LabelDelay    Duration `json:"label_delay,omitempty"`

	// Timeout per request; LateThreshold is how late an open-loop send may
	// start before it counts as late.
	Timeout       Duration `json:"timeout"`
	LateThreshold Duration `json:"late_threshold"`
	// Progress, when true, prints a progress line every second to Run's
	// progress writer.
	Progress bool `json:"-"`
}

// DefaultConfig returns the defaults every zero field gets.
func DefaultConfig() Config {
	return Config{
		Label:         "target",
		Rows:          1,
		Seed:          7,
		Ring:          4096,
		Accounts:      10000,
		Drift:         fraud.Drift{Kind: fraud.CovariateShift, Field: fraud.FieldAmount},
		LabelDelay:    Duration(time.Second),
		Timeout:       Duration(5 * time.Second),
		LateThreshold: Duration(2 * time.Millisecond),
	}
}

// ensureDefaults fills zero fields from DefaultConfig.
func (c *Config) ensureDefaults() {
	d := DefaultConfig()
	if c.Label == "" {
		c.Label = d.Label
	}
	if c.Rows == 0 {
		c.Rows = d.Rows
	}
	if c.Seed == 0 {
		c.Seed = d.Seed
	}
	if c.Ring == 0 {
		c.Ring = d.Ring
	}
	if c.Accounts == 0 {
		c.Accounts = d.Accounts
	}
	if c.Drift == (fraud.Drift{}) {
		c.Drift = d.Drift
	}
	if c.LabelDelay == 0 {
		c.LabelDelay = d.LabelDelay
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.LateThreshold == 0 {
		c.LateThreshold = d.LateThreshold
	}
	for i := range c.Scenario.Phases {
		if c.Scenario.Phases[i].Name == "" {
			c.Scenario.Phases[i].Name = "phase" + strconv.Itoa(i+1)
		}
	}
}

// Validate reports a configuration that cannot run, naming the bad value.
func (c *Config) Validate() error {
	u, err := url.Parse(c.Target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("%w: target %q is not an http(s)://HOST:PORT URL", ErrInvalidConfig, c.Target)
	}
	if c.Model == "" {
		return fmt.Errorf("%w: model is empty", ErrInvalidConfig)
	}
	if len(c.Scenario.Phases) == 0 {
		return fmt.Errorf("%w: no phases", ErrInvalidConfig)
	}
	for i, p := range c.Scenario.Phases {
		if p.Duration <= 0 {
			return fmt.Errorf("%w: phase %d (%s): duration %s must be positive", ErrInvalidConfig, i+1, p.Name, time.Duration(p.Duration))
		}
		if p.Rate < 0 || p.Connections < 0 {
			return fmt.Errorf("%w: phase %d (%s): rate %v and connections %d must not be negative", ErrInvalidConfig, i+1, p.Name, p.Rate, p.Connections)
		}
		if p.Rate == 0 && p.Connections == 0 {
			return fmt.Errorf("%w: phase %d (%s): want a rate (open loop) or connections (closed loop)", ErrInvalidConfig, i+1, p.Name)
		}
	}
	for i, a := range c.Scenario.Actions {
		switch a.Do {
		case ActionRegister:
			if a.File == "" {
				return fmt.Errorf("%w: action %d (register): file is empty", ErrInvalidConfig, i+1)
			}
		case ActionPromote, ActionRollback, ActionCanary, ActionStage:
			if a.Do == ActionStage && a.Stage == "" {
				return fmt.Errorf("%w: action %d (stage): stage is empty", ErrInvalidConfig, i+1)
			}
		case ActionKill, ActionStart, ActionRestart:
			if _, ok := c.Scenario.Nodes[a.Node]; !ok {
				return fmt.Errorf("%w: action %d (%s): node %q is not in the scenario's nodes", ErrInvalidConfig, i+1, a.Do, a.Node)
			}
			continue
		case ActionDriftOn, ActionDriftOff:
			continue
		default:
			return fmt.Errorf("%w: action %d: unknown action %q", ErrInvalidConfig, i+1, a.Do)
		}
		if c.Admin == "" {
			return fmt.Errorf("%w: action %d (%s) needs the admin API URL", ErrInvalidConfig, i+1, a.Do)
		}
	}
	for name, n := range c.Scenario.Nodes {
		if len(n.Cmd) == 0 {
			return fmt.Errorf("%w: node %q has no command line", ErrInvalidConfig, name)
		}
	}
	if c.Rows < 1 || c.Ring < 1 || c.Accounts < 1 {
		return fmt.Errorf("%w: rows %d, ring %d and accounts %d must be positive", ErrInvalidConfig, c.Rows, c.Ring, c.Accounts)
	}
	if c.LabelFraction < 0 || c.LabelFraction > 1 {
		return fmt.Errorf("%w: label fraction %v must be in [0, 1]", ErrInvalidConfig, c.LabelFraction)
	}
	if c.LabelFraction > 0 && c.Admin == "" {
		return fmt.Errorf("%w: labels need the admin API URL", ErrInvalidConfig)
	}
	if err := c.Drift.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// totalDuration is the sum of the phases' durations.
func (c *Config) totalDuration() time.Duration {
	var d time.Duration
	for _, p := range c.Scenario.Phases {
		d += time.Duration(p.Duration)
	}
	return d
}
