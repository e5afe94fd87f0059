package cmd

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	libcmd "github.com/elastic/beats/v7/libbeat/cmd"
	"github.com/elastic/beats/v7/libbeat/cmd/instance"
	"github.com/elastic/beats/v7/libbeat/esleg/eslegclient"
	"github.com/elastic/elastic-agent-libs/paths"

	"github.com/defenderbeat/defenderbeat/internal/stack"
)

// adoptSetupCmd gives libbeat's setup command defenderbeat's installation, keeping its flags:
// without flags everything is set up; --index-management installs the lifecycle policies, the
// final pipeline, the templates and the latest transforms; --pipelines the pipeline only;
// --dashboards the data views and dashboards.
func adoptSetupCmd(setup *cobra.Command, settings instance.Settings) {
	setup.Short = "Set up Elasticsearch (templates, lifecycle policies, pipeline, transforms) and Kibana (dashboards)"
	setup.Long = `Installs what the m365_defender integration's users get from Fleet, for defenderbeat's data
streams (logs-m365_defender.<dataset>-<namespace>):

 * Elasticsearch: the index templates (every field of every dataset), the ILM policies (the
   vulnerability data streams keep 7 days), the final ingest pipeline that sets event.ingested,
   and the "latest" transforms with their destination indices.
 * Kibana: the data views and dashboards.

Re-running changes nothing that is already in place; after an upgrade it replaces what changed.
Everything installed is embedded in the binary; setup.template.*, setup.ilm.* and
setup.dashboards.* apply as in other Beats.`
	usage := map[string]string{
		libcmd.IndexManagementKey: "Set up Elasticsearch: ILM policies, the final ingest pipeline, index templates, latest transforms",
		libcmd.PipelineKey:        "Set up the final ingest pipeline only",
		libcmd.DashboardKey:       "Load the data views and dashboards into Kibana",
	}
	for name, text := range usage {
		if f := setup.Flags().Lookup(name); f != nil {
			f.Usage = text
		}
	}
	for _, hidden := range []string{libcmd.EnableAllFilesetsKey, libcmd.ForceEnableModuleFilesets} {
		_ = setup.Flags().MarkHidden(hidden)
	}
	setup.Run = nil
	setup.SilenceUsage = true
	setup.SilenceErrors = true
	setup.RunE = func(cmd *cobra.Command, _ []string) error {
		want := setupSteps(cmd)
		if err := runSetup(cmd.Context(), cmd.OutOrStdout(), settings, want); err != nil {
			return &exitError{1, err}
		}
		return nil
	}
}

type steps struct{ indexManagement, pipelines, dashboards bool }

func setupSteps(cmd *cobra.Command) steps {
	flag := func(name string) bool { v, _ := cmd.Flags().GetBool(name); return v }
	s := steps{
		indexManagement: flag(libcmd.IndexManagementKey),
		pipelines:       flag(libcmd.PipelineKey),
		dashboards:      flag(libcmd.DashboardKey),
	}
	if s == (steps{}) {
		return steps{true, true, true}
	}
	return s
}

func runSetup(ctx context.Context, out io.Writer, settings instance.Settings, want steps) error {
	if ctx == nil {
		ctx = context.Background()
	}
	b, err := instance.NewInitializedBeat(settings)
	if err != nil {
		return fmt.Errorf("initialising: %w", err)
	}
	if want.indexManagement || want.pipelines {
		if err := setupElasticsearch(ctx, out, b, want); err != nil {
			return err
		}
	}
	if want.dashboards {
		fmt.Fprintln(out, "Loading dashboards (Kibana must be running and reachable)")
		loaded, err := stack.LoadDashboards(ctx, b.Info, b.Paths.Resolve(paths.Home, ""), instance.InitKibanaConfig(b.Config), b.Config.Dashboards)
		if err != nil {
			return fmt.Errorf("loading dashboards: %w", err)
		}
		for _, l := range loaded {
			fmt.Fprintf(out, "  %s: loaded\n", l)
		}
		fmt.Fprintln(out, "Loaded dashboards")
	}
	return nil
}

func setupElasticsearch(ctx context.Context, out io.Writer, b *instance.Beat, want steps) error {
	if b.Config.Output.Name() != "elasticsearch" {
		return stack.ErrNoElasticsearch
	}
	opts, err := stack.OptionsFromConfig(b.Info, b.RawConfig, b.Fields, b.Paths)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn, err := eslegclient.NewConnectedClient(ctx, b.Config.Output.Config(), b.Info.Beat, b.Info.Logger)
	if err != nil {
		return err
	}
	defer conn.Close()
	plan, err := stack.Build(opts, stack.Target{Version: conn.GetVersion(), Serverless: conn.IsServerless()})
	if err != nil {
		return err
	}
	if !want.indexManagement {
		plan = stack.Plan{Pipelines: plan.Pipelines}
	}
	esVersion := conn.GetVersion()
	fmt.Fprintf(out, "Elasticsearch %s (%s):\n", conn.URL, esVersion.String())
	rep, err := stack.Install(conn, plan, stack.InstallOptions{
		Mode:              stack.ModeSetup,
		BeatVersion:       b.Info.Version,
		OverwritePolicies: opts.ILM.Overwrite,
	})
	for _, r := range rep.Results {
		fmt.Fprintf(out, "  %s\n", r)
	}
	for _, o := range rep.Others {
		fmt.Fprintf(out, "  %s\n", o)
	}
	for _, n := range plan.Notes {
		fmt.Fprintf(out, "  Note: %s\n", n)
	}
	if err != nil {
		return err
	}
	if want.indexManagement {
		fmt.Fprintln(out, "Index setup finished.")
	} else {
		fmt.Fprintln(out, "Loaded Ingest pipelines")
	}
	return nil
}
