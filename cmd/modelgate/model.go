package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modelgate/modelgate/registry"
)

func init() {
	register(command{name: "model", summary: "register, list, show, promote, approve, roll back, retire models; get or set a policy", run: runModel})
}

const modelUsage = `usage: modelgate model <subcommand> [flags]

  register NAME --file F.onnx [--metadata M.json]   upload a version (validated before it can serve)
  list                                               models, champions, canaries
  show NAME [VERSION]                                a model's versions, or one version
  promote NAME VERSION [--reason R] [--force]        make VERSION the champion (--force: even if the
                                                     champion's clients cannot call it; audited)
  approve NAME VERSION [--reason R]                  pass a gate waiting for a person
  reject NAME VERSION [--reason R]                   drop a move waiting for approval
  rollback NAME [--reason R]                         the previous champion returns
  stage NAME VERSION shadow|canary [--weight W]      mirror traffic to it, or give it W% of traffic
        [--force]                                    (canary: even if the champion's clients cannot call it)
  retire NAME VERSION [--reason R]                   take it out of serving
  delete NAME VERSION [--reason R]                   delete a version that serves no traffic
  policy NAME [--set P.json]                         print the policy, or replace fields of it

Every subcommand takes --admin, --token, --data-dir and --json.`

func runModel(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, modelUsage)
		return usageError("want a subcommand")
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("model "+sub, stderr)
	client := clientFlags(fs)
	reason := fs.String("reason", "", "why (goes into the audit log)")
	var file, metadata, set *string
	var weight *float64
	force := new(bool)
	switch sub {
	case "register":
		file = fs.String("file", "", "the ONNX file")
		metadata = fs.String("metadata", "", "JSON file with lineage, signature, profile, golden pairs, idempotency_key")
	case "stage":
		weight = fs.Float64("weight", 0, "canary: percent of traffic, 0–100 in steps of 0.01 (0.1 is one request in a thousand)")
		force = fs.Bool("force", false, "make it the canary even though its signature differs from the champion's (recorded in the audit log)")
	case "promote":
		force = fs.Bool("force", false, "promote even though its signature differs from the champion's: clients sending what the champion takes will fail (recorded in the audit log)")
	case "policy":
		set = fs.String("set", "", "JSON file of policy fields to change")
	}
	// Positional arguments come first (NAME VERSION …), flags after.
	var pos []string
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	need := func(n int, names string) error {
		if len(pos) != n {
			return usageError("model " + sub + " takes " + names)
		}
		return nil
	}
	version := func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
		if err != nil || n <= 0 {
			return 0, usageError("a version is a positive integer, got " + strconv.Quote(s))
		}
		return n, nil
	}
	esc := url.PathEscape
	switch sub {
	case "register":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		return c.register(pos[0], *file, *metadata)
	case "list":
		if err := need(0, "no arguments"); err != nil {
			return err
		}
		return c.list()
	case "show":
		if len(pos) == 2 {
			v, err := version(pos[1])
			if err != nil {
				return err
			}
			b, err := c.do("GET", "/api/v1/models/"+esc(pos[0])+"/versions/"+strconv.Itoa(v), nil, "", nil)
			if err != nil {
				return err
			}
			c.printJSON(b)
			return nil
		}
		if err := need(1, "NAME [VERSION]"); err != nil {
			return err
		}
		return c.show(pos[0])
	case "promote", "approve", "reject", "retire", "delete":
		if err := need(2, "NAME VERSION"); err != nil {
			return err
		}
		v, err := version(pos[1])
		if err != nil {
			return err
		}
		base := "/api/v1/models/" + esc(pos[0])
		var b []byte
		switch sub {
		case "promote":
			body := map[string]any{"version": v, "reason": *reason}
			if *force {
				body["force"] = true
			}
			b, err = c.send("POST", base+"/promote", body, nil)
		case "approve", "reject":
			b, err = c.send("POST", base+"/versions/"+strconv.Itoa(v)+"/"+sub, map[string]any{"reason": *reason}, nil)
		case "retire":
			b, err = c.send("POST", base+"/versions/"+strconv.Itoa(v)+"/stage", map[string]any{"stage": "retired", "reason": *reason}, nil)
		case "delete":
			b, err = c.do("DELETE", base+"/versions/"+strconv.Itoa(v)+"?reason="+url.QueryEscape(*reason), nil, "", nil)
		}
		return c.result(b, err)
	case "rollback":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		b, err := c.send("POST", "/api/v1/models/"+esc(pos[0])+"/rollback", map[string]any{"reason": *reason}, nil)
		return c.result(b, err)
	case "stage":
		if err := need(3, "NAME VERSION shadow|canary|retired"); err != nil {
			return err
		}
		v, err := version(pos[1])
		if err != nil {
			return err
		}
		body := map[string]any{"stage": pos[2], "weight": *weight, "reason": *reason}
		if *force {
			body["force"] = true
		}
		b, err := c.send("POST", "/api/v1/models/"+esc(pos[0])+"/versions/"+strconv.Itoa(v)+"/stage", body, nil)
		return c.result(b, err)
	case "policy":
		if err := need(1, "NAME"); err != nil {
			return err
		}
		path := "/api/v1/models/" + esc(pos[0]) + "/policy"
		if *set == "" {
			b, err := c.do("GET", path, nil, "", nil)
			if err == nil {
				c.printJSON(b)
			}
			return err
		}
		body, err := os.ReadFile(*set)
		if err != nil {
			return err
		}
		b, err := c.do("PUT", path+"?reason="+url.QueryEscape(*reason), bytes.NewReader(body), "application/json", nil)
		return c.result(b, err)
	}
	fmt.Fprintln(stderr, modelUsage)
	return usageError("unknown subcommand " + strconv.Quote(sub))
}

// result prints a write's answer: the registry result in one line, or JSON.
func (c *apiClient) result(b []byte, err error) error {
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	var r registry.Result
	if json.Unmarshal(b, &r) != nil {
		c.printJSON(b)
		return nil
	}
	msg := fmt.Sprintf("%s %s", r.Op, r.Model)
	if r.Version > 0 {
		msg += fmt.Sprintf(" v%d", r.Version)
	}
	if r.Stage != "" {
		msg += ": " + string(r.Stage)
	}
	if r.PendingApproval {
		msg += " (waiting for approval: modelgate model approve)"
	}
	if r.Replayed {
		msg += " (already done: same idempotency key)"
	}
	fmt.Fprintf(c.out, "%s (audit #%d)\n", msg, r.AuditSeq)
	return nil
}

func (c *apiClient) register(name, file, metadata string) error {
	if file == "" {
		return usageError("model register needs --file F.onnx")
	}
	model, err := os.Open(file)
	if err != nil {
		return err
	}
	defer model.Close()
	var meta []byte
	if metadata != "" {
		if meta, err = os.ReadFile(metadata); err != nil {
			return err
		}
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if meta != nil {
				if err := mw.WriteField("metadata", string(meta)); err != nil {
					return err
				}
			}
			part, err := mw.CreateFormFile("model", filepath.Base(file))
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, model); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	var out struct {
		Model      string `json:"model"`
		Version    int    `json:"version"`
		Digest     string `json:"digest"`
		Stage      string `json:"stage"`
		Validation *struct {
			Passed bool   `json:"passed"`
			Reason string `json:"reason"`
		} `json:"validation"`
	}
	b, err := c.do("POST", "/api/v1/models/"+url.PathEscape(name)+"/versions", pr, mw.FormDataContentType(), &out)
	if err != nil {
		if json.Unmarshal(b, &out) == nil && out.Version > 0 {
			return fmt.Errorf("%s v%d registered but %w", out.Model, out.Version, err)
		}
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	fmt.Fprintf(c.out, "registered %s v%d (sha256 %s): %s\n", out.Model, out.Version, out.Digest, out.Stage)
	return nil
}

func (c *apiClient) list() error {
	var out struct {
		Models []registry.Model `json:"models"`
	}
	b, err := c.do("GET", "/api/v1/models", nil, "", &out)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tCHAMPION\tCANARY\tVERSIONS\tCREATED")
	for _, m := range out.Models {
		canary := "-"
		if m.Canary > 0 {
			canary = fmt.Sprintf("v%d (%s%%)", m.Canary, registry.FormatWeight(m.CanaryWeight))
		}
		champ := "-"
		if m.Champion > 0 {
			champ = fmt.Sprintf("v%d", m.Champion)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Name, champ, canary, len(m.Versions), m.Created.Format(time.DateTime))
	}
	return tw.Flush()
}

func (c *apiClient) show(name string) error {
	var m registry.Model
	b, err := c.do("GET", "/api/v1/models/"+url.PathEscape(name), nil, "", &m)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	fmt.Fprintf(c.out, "%s: champion v%d", m.Name, m.Champion)
	if m.Canary > 0 {
		fmt.Fprintf(c.out, ", canary v%d at %s%%", m.Canary, registry.FormatWeight(m.CanaryWeight))
	}
	fmt.Fprintf(c.out, ", promotion %s\n\n", m.Policy.Promotion.Mode)
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTAGE\tSHA256\tSIZE\tCREATED\tREGISTERED BY\tVALIDATION")
	for _, v := range m.Versions {
		val := "-"
		if v.Validation != nil {
			val = "passed"
			if !v.Validation.Passed {
				val = "failed: " + truncateLine(v.Validation.Reason, 60)
			}
		}
		stage := string(v.Stage)
		if v.Pending != nil {
			stage += " (→" + string(v.Pending.To) + " awaits approval)"
		}
		fmt.Fprintf(tw, "v%d\t%s\t%.12s\t%d\t%s\t%s\t%s\n", v.Number, stage, v.Digest, v.Size, v.Created.Format(time.DateTime), v.Lineage.RegisteredBy, val)
	}
	return tw.Flush()
}

func truncateLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
