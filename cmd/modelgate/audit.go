package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/modelgate/modelgate/registry"
)

func init() {
	register(command{name: "audit", summary: "print the audit log (every registry change: who, when, why, evidence)", run: runAudit})
	register(command{name: "predictions", summary: "get one logged prediction with its lineage, or export a model's predictions as NDJSON", run: runPredictions})
	register(command{name: "labels", summary: "send ground-truth labels for logged predictions", run: runLabels})
}

func runAudit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit", stderr)
	client := clientFlags(fs)
	model := fs.String("model", "", "only this model")
	since := fs.Uint64("since", 0, "only records after this sequence number")
	limit := fs.Int("limit", 100, "at most this many records")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *model != "" {
		q.Set("model", *model)
	}
	q.Set("since", strconv.FormatUint(*since, 10))
	q.Set("limit", strconv.Itoa(*limit))
	var out struct {
		Records []registry.AuditRecord `json:"records"`
		Next    uint64                 `json:"next"`
	}
	b, err := c.do("GET", "/api/v1/audit?"+q.Encode(), nil, "", &out)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(b)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tMODEL\tVERSION\tCHANGE\tREASON")
	for _, r := range out.Records {
		change := ""
		if r.From != "" || r.To != "" {
			change = string(r.From) + "→" + string(r.To)
		}
		v := "-"
		if r.Version > 0 {
			v = "v" + strconv.Itoa(r.Version)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.Local().Format(time.DateTime), r.Actor, r.Action, r.Model, v, change, truncateLine(r.Reason, 70))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Records) == *limit {
		fmt.Fprintf(stderr, "(more: --since %d)\n", out.Next)
	}
	return nil
}

func runPredictions(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "get" && args[0] != "export") {
		return usageError("want: predictions get REQUEST_ID | predictions export MODEL [--since CURSOR] [--labelled]")
	}
	sub := args[0]
	fs := newFlags("predictions "+sub, stderr)
	client := clientFlags(fs)
	since := fs.String("since", "", "export: resume from this cursor")
	labelled := fs.Bool("labelled", false, "export: only rows that have a label")
	var pos []string
	rest := args[1:]
	for len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("predictions " + sub + " takes one argument")
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	if sub == "get" {
		b, err := c.do("GET", "/api/v1/predictions/"+url.PathEscape(pos[0]), nil, "", nil)
		if err == nil {
			c.printJSON(b)
		}
		return err
	}
	q := url.Values{}
	if *since != "" {
		q.Set("since", *since)
	}
	if *labelled {
		q.Set("labelled", "true")
	}
	b, err := c.do("GET", "/api/v1/models/"+url.PathEscape(pos[0])+"/export?"+q.Encode(), nil, "", nil)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

// runLabels sends labels from a file or stdin: a JSON array of
// {"id","label","time"} or NDJSON, one such object a line.
func runLabels(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "send" {
		return usageError("want: labels send MODEL [--file labels.ndjson]  (JSON array or NDJSON of {\"id\",\"label\",\"time\"}; stdin when no file)")
	}
	fs := newFlags("labels send", stderr)
	client := clientFlags(fs)
	file := fs.String("file", "", "labels file (default stdin)")
	var pos []string
	rest := args[1:]
	for len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("labels send takes MODEL")
	}
	var in io.Reader = os.Stdin
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var labels []json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &labels); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			if !json.Valid(line) {
				return fmt.Errorf("labels line %d is not JSON", n)
			}
			labels = append(labels, append(json.RawMessage(nil), line...))
		}
	}
	c, err := client(stdout)
	if err != nil {
		return err
	}
	b, err := c.send("POST", "/api/v1/models/"+url.PathEscape(pos[0])+"/labels", labels, nil)
	if err == nil {
		c.printJSON(b)
	}
	return err
}
