package graphinput

import (
	"fmt"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// Config is the options every Graph security input has (docs/configuration.md lists them).
type Config struct {
	msapi.Options   `config:",inline"`
	inputkit.Common `config:",inline"`

	Interval                  time.Duration `config:"interval"`
	InitialInterval           time.Duration `config:"initial_interval"`
	Overlap                   time.Duration `config:"overlap"`
	BatchSize                 int           `config:"batch_size"`
	IncludeUnknownEnumMembers bool          `config:"include_unknown_enum_members"`

	// Server-side filters (filter.go): Graph returns only the records that match.
	Filter         string   `config:"filter"`
	Severities     []string `config:"severities"`
	ServiceSources []string `config:"service_sources"`

	newReader NewReader // from the dataset's own options, when it has a Reader
	filter    string    // the clause filter, severities and service_sources make together
}

func defaultConfig(spec Spec) Config {
	return Config{
		Options:         msapi.DefaultOptions(),
		Interval:        spec.DefaultInterval,
		InitialInterval: 24 * time.Hour,
		BatchSize:       spec.MaxBatch,
		Common:          inputkit.Common{Namespace: inputkit.DefaultNamespace},
	}
}

// resolve applies defaults and returns every problem at once, each naming its option, so a
// user fixes a config in one round instead of one error per start.
func (c *Config) resolve(spec Spec) []error {
	errs := append(c.Options.Resolve(msapi.Graph), c.Common.Resolve()...)
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval: must be positive, got %s", c.Interval))
	}
	if c.InitialInterval <= 0 {
		errs = append(errs, fmt.Errorf("initial_interval: must be positive, got %s", c.InitialInterval))
	}
	if c.Overlap < 0 {
		errs = append(errs, fmt.Errorf("overlap: must not be negative, got %s", c.Overlap))
	}
	if c.BatchSize < 1 || c.BatchSize > spec.MaxBatch {
		errs = append(errs, fmt.Errorf("batch_size: must be between 1 and %d (Graph's $top limit for %s), got %d", spec.MaxBatch, spec.Path, c.BatchSize))
	}
	var more []error
	c.filter, more = c.resolveFilter(spec)
	return append(errs, more...)
}
