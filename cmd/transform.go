package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/beater"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Exit codes of `defenderbeat transform`.
const (
	exitMalformed = 1
	exitUsage     = 2
)

// maxLineBytes bounds one input line: an expanded incident page can be large, an unbounded
// line cannot be allowed to take the machine's memory.
const maxLineBytes = 256 << 20

type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func genTransformCmd() *cobra.Command {
	var (
		dataset       string
		tags          []string
		generatedTime string
	)
	cmd := &cobra.Command{
		Use:   "transform [FILE|-]",
		Short: "Run a dataset's processing offline: raw JSON lines in, ECS documents out",
		Long: `Reads JSON, one object per line, from FILE or standard input and writes the documents the
inputs would publish, one per line, without @metadata and beat metadata. A line holding a Graph
page {"value":[...]} or an Event Hub message {"records":[...]} gives one line per record; a record
or page that gives no document prints null. Exit status: 0 all lines processed, 1 some line or
record was malformed (its error document is printed and the reason goes to stderr), 2 usage error.`,
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fn, ok := beater.TransformFor(dataset)
			if !ok {
				return &exitError{exitUsage, fmt.Errorf("--dataset: %q is not one of %s", dataset, strings.Join(beater.Datasets(), ", "))}
			}
			opts := transform.Options{Tags: tags}
			if generatedTime != "" {
				t, err := time.Parse(time.RFC3339Nano, generatedTime)
				if err != nil {
					return &exitError{exitUsage, fmt.Errorf("--generated-time: %q is not an RFC 3339 time", generatedTime)}
				}
				opts.GeneratedTime = t
			}
			in := io.Reader(os.Stdin)
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return &exitError{exitUsage, err}
				}
				defer f.Close()
				in = f
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			malformed, err := runTransform(in, out, cmd.ErrOrStderr(), fn, opts)
			if err != nil {
				return &exitError{exitMalformed, err}
			}
			if malformed > 0 {
				return &exitError{exitMalformed, fmt.Errorf("%d malformed line(s)", malformed)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataset, "dataset", "", "dataset whose processing to run: "+strings.Join(beater.Datasets(), "|"))
	cmd.Flags().StringSliceVar(&tags, "tags", nil, "tags of the input (preserve_original_event and preserve_duplicate_custom_fields switch those behaviours)")
	cmd.Flags().StringVar(&generatedTime, "generated-time", "", "vulnerability: the export's generatedTime (RFC 3339)")
	return cmd
}

// runTransform processes every line and returns how many were malformed.
func runTransform(in io.Reader, out io.Writer, errOut io.Writer, fn transform.Func, opts transform.Options) (int, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), maxLineBytes)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	write := func(ev beat.Event) error {
		doc := transform.Document(ev)
		if len(opts.Tags) > 0 {
			doc["tags"] = opts.Tags
		} else {
			delete(doc, "tags")
		}
		return enc.Encode(doc)
	}
	malformed := 0
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		records, err := splitRecords(line)
		if err != nil {
			malformed++
			fmt.Fprintf(errOut, "line %d: %v\n", lineNo, err)
			if err := write(transform.ErrorEvent(line, err, opts, time.Now())); err != nil {
				return malformed, err
			}
			continue
		}
		if len(records) == 0 {
			if _, err := io.WriteString(out, "null\n"); err != nil {
				return malformed, err
			}
			continue
		}
		for _, raw := range records {
			emitted := 0
			var writeErr error
			err := fn(raw, opts, func(ev beat.Event) {
				emitted++
				if isErrorDocument(ev) {
					// A message whose other records were usable: this record is reported alone.
					malformed++
					msg, _ := ev.Fields.GetValue("error.message")
					fmt.Fprintf(errOut, "line %d: %v\n", lineNo, msg)
				}
				if writeErr == nil {
					writeErr = write(ev)
				}
			})
			if writeErr != nil {
				return malformed, writeErr
			}
			if err != nil {
				malformed++
				fmt.Fprintf(errOut, "line %d: %v\n", lineNo, err)
				if err := write(transform.ErrorEvent(raw, err, opts, time.Now())); err != nil {
					return malformed, err
				}
				continue
			}
			if emitted == 0 {
				if _, err := io.WriteString(out, "null\n"); err != nil {
					return malformed, err
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return malformed, fmt.Errorf("a line is longer than %d MiB", maxLineBytes>>20)
		}
		return malformed, err
	}
	return malformed, nil
}

// splitRecords turns a line into the records it holds: a Graph page's `value`, or the line
// itself. An Event Hub message ({"records":[...]}) is one line the event dataset splits itself, as
// its input does, so that sanitizing and per-record errors work the same offline.
func splitRecords(line []byte) ([]json.RawMessage, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return []json.RawMessage{line}, nil
	}
	if list, ok := probe["value"]; ok && bytes.HasPrefix(bytes.TrimSpace(list), []byte("[")) {
		var records []json.RawMessage
		if err := json.Unmarshal(list, &records); err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		return records, nil
	}
	return []json.RawMessage{line}, nil
}

// isErrorDocument tells the error document of a record that could not be processed
// (transform.ErrorEvent) from documents that merely report a field problem.
func isErrorDocument(ev beat.Event) bool {
	id, _ := ev.Meta["_id"].(string)
	return strings.HasPrefix(id, transform.ErrorIDPrefix)
}
