// Package inputkit holds what every defenderbeat input shares besides the Microsoft API client:
// the options every input has, how configuration problems are reported, and what an input adds
// to each document before publishing it.
package inputkit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"
)

// Common are the options of every input. Tags, index and processors are also read by libbeat
// itself (the beater fills their defaults per dataset).
type Common struct {
	Type      string   `config:"type"`
	ID        string   `config:"id"`
	Tags      []string `config:"tags"`
	Namespace string   `config:"namespace"`
}

// DefaultNamespace is the data stream namespace when none is configured.
const DefaultNamespace = "default"

// Resolve checks the common options and returns every problem at once. Every options type has
// a Resolve: it applies what derives from other options and names each problem's option.
func (c Common) Resolve() []error {
	var errs []error
	if strings.TrimSpace(c.ID) == "" {
		errs = append(errs, errors.New("id: required; give every input a stable id, it is part of the cursor key"))
	}
	if c.Namespace == "" || strings.ContainsAny(c.Namespace, `\/*?"<>| ,#:-`) || strings.ToLower(c.Namespace) != c.Namespace {
		errs = append(errs, fmt.Errorf("namespace: %q must be lowercase and free of \\ / * ? \" < > | , # : - and spaces (it is part of the data stream name)", c.Namespace))
	}
	return errs
}

// ConfigError is every problem of one input's configuration, naming the input, so a user
// fixes a configuration in one round instead of one error per start.
type ConfigError struct {
	InputType string
	ID        string
	Problems  []error
}

func (e *ConfigError) Error() string {
	id := e.ID
	if id == "" {
		id = "(no id)"
	}
	msgs := make([]string, len(e.Problems))
	for i, err := range e.Problems {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("input %q (type %s): %d problem(s):\n  - %s", id, e.InputType, len(e.Problems), strings.Join(msgs, "\n  - "))
}

// Report renders every problem of one input in one error. It returns nil without problems.
func Report(inputType, id string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &ConfigError{InputType: inputType, ID: id, Problems: errs}
}

// Decorate adds what the processing leaves to the input: where the document goes. The
// processing's tags are removed because libbeat adds the input's configured tags itself.
func Decorate(ev *beat.Event, dataset, namespace string) {
	if ev.Fields == nil {
		ev.Fields = mapstr.M{}
	}
	ev.Fields.Delete("tags")
	full := "m365_defender." + dataset
	_, _ = ev.Fields.Put("event.dataset", full)
	ev.Fields["data_stream"] = mapstr.M{"type": "logs", "dataset": full, "namespace": namespace}
}
