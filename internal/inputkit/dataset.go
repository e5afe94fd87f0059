package inputkit

import (
	"context"
	"errors"
	"time"

	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	cursor "github.com/elastic/beats/v7/filebeat/input/v2/input-cursor"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/feature"
	"github.com/elastic/beats/v7/libbeat/publisher/pipetool"
	"github.com/elastic/beats/v7/libbeat/statestore"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/go-concert/ctxtool"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Dataset is everything the beat needs from one module: beater/datasets.go lists one per
// module, and nothing else names a module.
type Dataset struct {
	Name      string // the dataset is m365_defender.<Name>
	InputType string // fixed forever: it is part of every stored cursor key
	Plugin    func(*logp.Logger, statestore.States) v2.Plugin
	// Check reports every problem of an input's options at once (start-up and `test config`).
	Check func(*conf.C) error
	// Probe makes the cheapest call that proves an input's credentials and permissions
	// (`test credentials`).
	Probe     func(context.Context, *conf.C, *logp.Logger) error
	Transform transform.Func
	// Options are the options the input reads itself; Validate adds those libbeat reads from
	// every input. Any other key in an input's configuration is reported as unknown.
	Options OptionSet
	// Cursor lets `defenderbeat cursor` read and move what the input keeps in the registry.
	Cursor *CursorTools
}

// Validate reports every problem of an input's configuration at once: the options it does
// not know (named, with the one probably meant) and the values Check refuses.
func (d Dataset) Validate(cfg *conf.C) error {
	unknown := d.Options.WithBeatOptions().Unknown(cfg)
	err := d.Check(cfg)
	if len(unknown) == 0 {
		return err
	}
	var report *ConfigError
	if errors.As(err, &report) {
		report.Problems = append(unknown, report.Problems...)
		return report
	}
	id, _ := cfg.String("id", -1)
	return errors.Join(Report(d.InputType, id, unknown), err)
}

// CursorInput describes an input whose cursor the registry keeps per tenant, moved only by the
// output's ACKs. C is the input's parsed configuration.
type CursorInput[C any] struct {
	Type string // fixed forever: it is part of every stored cursor key
	Info string
	// Configure unpacks an input's options, applies defaults and returns every problem at once.
	Configure func(*conf.C) (C, error)
	// Tenant keys the cursor: pointing an input id at another tenant starts a fresh cursor
	// instead of applying one tenant's position to another.
	Tenant func(C) string
	Probe  func(context.Context, C, *logp.Logger) error
	// Run collects until ctx is cancelled, starting from the stored cursor.
	Run func(ctx v2.Context, cfg C, cur cursor.Cursor, pub cursor.Publisher) error
	// Options are the options Configure reads; nil means the `config` tags of C.
	Options OptionSet
	// Cursor describes the stored cursor to `defenderbeat cursor` (CursorOf).
	Cursor *CursorTools
	// PreNormalized turns off libbeat's event normalization, a deep copy of every document into
	// the types the outputs encode, for an input whose documents are built in those types
	// already (a test of the transform must show it).
	PreNormalized bool
}

// cursorLifetime keeps an input's cursor for 30 days after it was last used: an API cursor
// cannot be rebuilt (a lost vulnerability cursor costs a whole new export), and an input that
// is paused over a holiday must resume, not restart.
const cursorLifetime = 30 * 24 * time.Hour

// Dataset completes the description with the dataset's name and processing.
func (k CursorInput[C]) Dataset(name string, fn transform.Func) Dataset {
	options := k.Options
	if options == nil {
		options = OptionsOf(*new(C))
	}
	var tools *CursorTools
	if k.Cursor != nil {
		t := *k.Cursor
		t.Source = func(cfg *conf.C) (string, error) {
			c, err := k.Configure(cfg)
			if err != nil {
				return "", err
			}
			return tenantSource(k.Tenant(c)).Name(), nil
		}
		tools = &t
	}
	return Dataset{Name: name, InputType: k.Type, Plugin: k.Plugin, Check: k.Check, Probe: k.ProbeConfig, Transform: fn, Options: options, Cursor: tools}
}

// Plugin registers the input with filebeat's cursor input manager.
func (k CursorInput[C]) Plugin(log *logp.Logger, store statestore.States) v2.Plugin {
	manager := &cursor.InputManager{
		Logger:              log,
		StateStore:          store,
		Type:                k.Type,
		DefaultCleanTimeout: cursorLifetime,
		Configure: func(cfg *conf.C, _ *logp.Logger) ([]cursor.Source, cursor.Input, error) {
			c, err := k.Configure(cfg)
			if err != nil {
				return nil, nil, err
			}
			return []cursor.Source{tenantSource(k.Tenant(c))}, &cursorInput[C]{kind: k, cfg: c}, nil
		},
	}
	p := v2.Plugin{Name: k.Type, Stability: feature.Stable, Info: k.Info, Manager: manager}
	if k.PreNormalized {
		p.Manager = preNormalizedManager{manager}
	}
	return p
}

// preNormalizedManager creates inputs whose pipeline clients skip libbeat's normalization.
type preNormalizedManager struct{ *cursor.InputManager }

func (m preNormalizedManager) Create(cfg *conf.C) (v2.Input, error) {
	in, err := m.InputManager.Create(cfg)
	if err != nil {
		return nil, err
	}
	return preNormalizedInput{in}, nil
}

type preNormalizedInput struct{ v2.Input }

var noNormalization = false

func (in preNormalizedInput) Run(ctx v2.Context, pipeline beat.PipelineConnector) error {
	return in.Input.Run(ctx, pipetool.WithClientConfigEdit(pipeline, func(c beat.ClientConfig) (beat.ClientConfig, error) {
		c.Processing.EventNormalization = &noNormalization
		return c, nil
	}))
}

// Check reports every problem of an input's options.
func (k CursorInput[C]) Check(cfg *conf.C) error {
	_, err := k.Configure(cfg)
	return err
}

// ProbeConfig probes the credentials and permissions of an input's options.
func (k CursorInput[C]) ProbeConfig(ctx context.Context, cfg *conf.C, log *logp.Logger) error {
	c, err := k.Configure(cfg)
	if err != nil {
		return err
	}
	return k.Probe(ctx, c, log)
}

type tenantSource string

func (s tenantSource) Name() string { return "tenant-" + string(s) }

type cursorInput[C any] struct {
	kind CursorInput[C]
	cfg  C
}

func (in *cursorInput[C]) Name() string { return in.kind.Type }

func (in *cursorInput[C]) Test(_ cursor.Source, ctx v2.TestContext) error {
	return in.kind.Probe(ctxtool.FromCanceller(ctx.Cancelation), in.cfg, ctx.Logger)
}

func (in *cursorInput[C]) Run(ctx v2.Context, _ cursor.Source, cur cursor.Cursor, pub cursor.Publisher) error {
	return in.kind.Run(ctx, in.cfg, cur, pub)
}
