package cmd

import (
	"fmt"
	"strings"
	"sync"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/esleg/eslegclient"
	"github.com/elastic/beats/v7/libbeat/idxmgmt"
	"github.com/elastic/beats/v7/libbeat/management"
	"github.com/elastic/beats/v7/libbeat/outputs/elasticsearch"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"

	"github.com/defenderbeat/defenderbeat/beater"
	"github.com/defenderbeat/defenderbeat/internal/stack"
)

// libbeat's index management knows one template and one policy per beat, named after the beat;
// defenderbeat writes to the integration's data streams and needs several (package stack). So
// libbeat's is kept for routing events to indices only, and defenderbeat's own installs the
// assets: in `setup`, and when the Elasticsearch output connects.

// indexSupport routes events like libbeat (each input's index) but installs nothing itself.
func indexSupport(log *logp.Logger, info beat.Info, root *conf.C) (idxmgmt.Supporter, error) {
	std, err := idxmgmt.DefaultSupport(info, nil) // routing only: the setup.* settings are ours
	if err != nil {
		return nil, err
	}
	opts, err := stack.OptionsFromConfig(info, root, nil, nil)
	if err != nil {
		return nil, err
	}
	fromConfig.set(root, opts)
	return routingOnly{std}, nil
}

type routingOnly struct{ idxmgmt.Supporter }

func (routingOnly) Enabled() bool { return false }

func (routingOnly) Manager(idxmgmt.ClientHandler, idxmgmt.Asseter) idxmgmt.Manager {
	return noManager{}
}

type noManager struct{}

func (noManager) VerifySetup(idxmgmt.LoadMode, idxmgmt.LoadMode) (bool, string) { return true, "" }
func (noManager) Setup(idxmgmt.LoadMode, idxmgmt.LoadMode) error                { return nil }

// fromConfig carries what newBeater needs from the whole configuration, which libbeat hands
// only to indexSupport; libbeat calls indexSupport first, once per process.
var fromConfig configSnapshot

type configSnapshot struct {
	mu     sync.Mutex
	opts   stack.Options
	output string
	root   *conf.C
}

func (c *configSnapshot) set(root *conf.C, opts stack.Options) {
	var out struct {
		Output conf.Namespace `config:"output"`
	}
	if root != nil {
		_ = root.Unpack(&out)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opts, c.output, c.root = opts, out.Output.Name(), root
}

func (c *configSnapshot) get() (stack.Options, string, *conf.C) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts, c.output, c.root
}

// newBeater is the beat's creator: beater.New, plus, for a standalone beat writing to
// Elasticsearch, the installation of what is missing each time the output connects (Elastic
// Agent's integration package brings them under Agent).
func newBeater(b *beat.Beat, cfg *conf.C) (beat.Beater, error) {
	bt, err := beater.New(b, cfg)
	if err != nil {
		return nil, err
	}
	opts, output, root := fromConfig.get()
	if b.Manager.Enabled() || management.UnderAgent() || b.InSetupCmd {
		return bt, nil
	}
	if err := checkDashboardsAtStart(root); err != nil {
		return nil, err
	}
	if output != "elasticsearch" {
		return bt, nil
	}
	if !opts.Template.Enabled && !opts.ILM.Enabled {
		return bt, nil
	}
	opts.Info, opts.Fields, opts.Paths = b.Info, b.Fields, b.Paths
	log := b.Info.Logger.Named("stack")
	if _, err := elasticsearch.RegisterConnectCallback(func(conn *eslegclient.Connection, _ *logp.Logger) error {
		return installOnConnect(conn, opts, log)
	}); err != nil {
		return nil, fmt.Errorf("registering the index setup: %w", err)
	}
	return bt, nil
}

// installOnConnect creates what is missing before the output sends its first batch; an error
// keeps the connection from being used, so no document lands in a data stream without its
// mappings.
func installOnConnect(conn *eslegclient.Connection, opts stack.Options, log *logp.Logger) error {
	plan, err := stack.Build(opts, stack.Target{Version: conn.GetVersion(), Serverless: conn.IsServerless()})
	if err != nil {
		return err
	}
	rep, err := stack.Install(conn, plan, stack.InstallOptions{
		Mode:               stack.ModeConnect,
		BeatVersion:        opts.Info.Version,
		OverwritePolicies:  opts.ILM.Overwrite,
		OverwriteTemplates: opts.Template.Overwrite,
	})
	for _, r := range rep.Results {
		switch r.Outcome {
		case stack.Unchanged:
			log.Debugf("%s is in place.", strings.TrimSuffix(r.String(), ": unchanged"))
		case stack.Kept:
			log.Warnf("%s.", r)
		default:
			log.Infof("%s.", r)
		}
	}
	if err != nil {
		return fmt.Errorf("installing defenderbeat's index setup: %w", err)
	}
	return nil
}

// checkDashboardsAtStart refuses setup.dashboards.enabled without a dashboards source: libbeat
// would then load its generated defenderbeat-* data view and fail on <path.home>/kibana, which a
// plain build does not have; the embedded dashboards load with `setup --dashboards`.
func checkDashboardsAtStart(root *conf.C) error {
	var cfg struct {
		Dashboards *conf.C `config:"setup.dashboards"`
	}
	if root == nil || root.Unpack(&cfg) != nil || cfg.Dashboards == nil || !cfg.Dashboards.Enabled() {
		return nil
	}
	for _, source := range []string{"directory", "file", "url"} {
		if cfg.Dashboards.HasField(source) {
			return nil
		}
	}
	return fmt.Errorf("setup.dashboards.enabled: true loads dashboards from setup.dashboards.directory, file or url, and none is set; " +
		"defenderbeat's own dashboards are built in: load them with `defenderbeat setup --dashboards` and remove setup.dashboards.enabled")
}
