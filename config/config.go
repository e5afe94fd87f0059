// Package config holds defenderbeat's beat-level settings: the list of inputs and where their
// cursors are kept. Each input validates its own options (module/<dataset>).
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// Config is the `defenderbeat` section of defenderbeat.yml.
type Config struct {
	Inputs   []*conf.C `config:"inputs"`
	Registry Registry  `config:"registry"`
}

// Registry locates the cursor store. It lives under path.data so a restart, an upgrade or a
// reinstall that keeps path.data resumes every input where it stopped.
type Registry struct {
	Path          string        `config:"path"`
	Permissions   os.FileMode   `config:"file_permissions"`
	CleanInterval time.Duration `config:"cleanup_interval"`
}

// Default is used for every option the user leaves out.
func Default() Config {
	return Config{
		Registry: Registry{
			Path:          "registry",
			Permissions:   0o600,
			CleanInterval: 5 * time.Minute,
		},
	}
}

// Unpack reads the beat section, applying defaults.
func Unpack(raw *conf.C) (Config, error) {
	c := Default()
	if raw == nil {
		return c, nil
	}
	if err := raw.Unpack(&c); err != nil {
		return c, fmt.Errorf("defenderbeat: %w", err)
	}
	// A misspelt key (defenderbeat.input) would otherwise be ignored in silence.
	errs := inputkit.OptionsOf(Config{}).Unknown(raw)
	errs = append(errs, c.Registry.Resolve()...)
	if len(errs) > 0 {
		return c, fmt.Errorf("defenderbeat: %w", errors.Join(errs...))
	}
	return c, nil
}

// Resolve checks the registry options and returns every problem at once, each naming its
// option, like every other options type.
func (r Registry) Resolve() []error {
	var errs []error
	if r.CleanInterval <= 0 {
		errs = append(errs, fmt.Errorf("registry.cleanup_interval: must be a positive duration such as 5m, got %s", r.CleanInterval))
	}
	if r.Path == "" {
		errs = append(errs, errors.New("registry.path: must not be empty"))
	}
	return errs
}
