package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/elastic/beats/v7/libbeat/cmd/instance"
	"github.com/elastic/beats/v7/libbeat/dashboards"
	"github.com/elastic/beats/v7/libbeat/version"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/kibana"
	libversion "github.com/elastic/elastic-agent-libs/version"

	"github.com/defenderbeat/defenderbeat/internal/stack"
)

// adoptExportCmd replaces libbeat's export template, ilm-policy and dashboard with defenderbeat's
// (several templates and policies, and dashboards saved where the loader reads them) and adds
// export pipelines and transforms.
func adoptExportCmd(export *cobra.Command, settings instance.Settings) {
	for _, c := range export.Commands() {
		switch c.Name() {
		case "template", "ilm-policy", "dashboard", "index-pattern":
			export.RemoveCommand(c)
		}
	}
	export.Short = "Export the configuration, index templates, ILM policies, ingest pipelines, transforms or a dashboard"
	export.AddCommand(
		exportObjectsCmd(settings, "template", "Export the index templates", true, func(p stack.Plan) []stack.Object { return p.Templates }),
		exportObjectsCmd(settings, "ilm-policy", "Export the ILM policies", false, func(p stack.Plan) []stack.Object { return p.Policies }),
		exportObjectsCmd(settings, "pipelines", "Export the ingest pipelines", false, func(p stack.Plan) []stack.Object { return p.Pipelines }),
		exportObjectsCmd(settings, "transforms", "Export the latest transforms and their destination indices", false, func(p stack.Plan) []stack.Object { return p.Transforms }),
		exportDashboardCmd(settings),
		&cobra.Command{
			Use:   "index-pattern",
			Short: "Export the data views setup loads into Kibana (NDJSON for Kibana's import)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				views, err := stack.DataViews()
				if err != nil {
					return &exitError{1, err}
				}
				_, err = cmd.OutOrStdout().Write(views)
				return err
			},
			SilenceUsage:  true,
			SilenceErrors: true,
		},
	)
}

// exportObjectsCmd prints, as one JSON object keyed by the name each gets in Elasticsearch, the
// bodies setup would send; with --dir it writes one file per object instead.
func exportObjectsCmd(settings instance.Settings, use, short string, withNoILM bool, pick func(stack.Plan) []stack.Object) *cobra.Command {
	var dir, esVersion string
	var noILM bool
	cmd := &cobra.Command{
		Use:           use,
		Short:         short,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ver, err := libversion.New(esVersion)
			if err != nil {
				return &exitError{exitUsage, fmt.Errorf("--es.version: %w", err)}
			}
			b, err := instance.NewInitializedBeat(settings)
			if err != nil {
				return &exitError{1, fmt.Errorf("initialising: %w", err)}
			}
			opts, err := stack.OptionsFromConfig(b.Info, b.RawConfig, b.Fields, b.Paths)
			if err != nil {
				return &exitError{1, err}
			}
			if noILM {
				opts.ILM.Enabled = false
			}
			plan, err := stack.Build(opts, stack.Target{Version: *ver})
			if err != nil {
				return &exitError{1, err}
			}
			objs := pick(plan)
			if dir != "" {
				err = writeObjects(cmd.OutOrStdout(), dir, objs)
			} else {
				err = printObjects(cmd.OutOrStdout(), objs)
			}
			if err != nil {
				return &exitError{1, err}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "Write one file per object under this directory instead of printing them")
	cmd.Flags().StringVar(&esVersion, "es.version", version.GetDefaultVersion(), "Elasticsearch version")
	if withNoILM {
		cmd.Flags().BoolVar(&noILM, "noilm", false, "Generate the templates without ILM policies")
	}
	return cmd
}

// exported is what an object looks like in an export: a transform carries its destination index.
func exported(o stack.Object) any {
	if o.Kind != stack.KindTransform || o.Dest == nil {
		return o.Body
	}
	return map[string]any{"transform": o.Body, "destination_index": map[string]any{o.Dest.Name: o.Dest.Body}}
}

func printObjects(out io.Writer, objs []stack.Object) error {
	var buf bytes.Buffer
	buf.WriteString("{")
	for i, o := range objs {
		if i > 0 {
			buf.WriteString(",")
		}
		name, _ := json.Marshal(o.Name)
		body, err := json.MarshalIndent(exported(o), "  ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(&buf, "\n  %s: %s", name, body)
	}
	buf.WriteString("\n}\n")
	_, err := out.Write(buf.Bytes())
	return err
}

var exportFolders = map[stack.Kind]string{
	stack.KindTemplate:  "template",
	stack.KindPolicy:    "policy",
	stack.KindPipeline:  "pipeline",
	stack.KindTransform: "transform",
	stack.KindIndex:     "index",
}

func writeObjects(out io.Writer, dir string, objs []stack.Object) error {
	var all []stack.Object
	for _, o := range objs {
		if o.Dest != nil {
			all = append(all, *o.Dest)
		}
		all = append(all, o)
	}
	for _, o := range all {
		folder := filepath.Join(dir, exportFolders[o.Kind])
		if err := os.MkdirAll(folder, 0o755); err != nil {
			return err
		}
		body, err := json.MarshalIndent(o.Body, "", "  ")
		if err != nil {
			return err
		}
		file := filepath.Join(folder, o.Name+".json")
		if err := os.WriteFile(file, append(body, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(out, "Wrote", file)
	}
	return nil
}

// exportDashboardCmd exports a dashboard and everything it references (data views left out: they
// ship on their own) into <folder>/_meta/kibana/7/<type>/<id>.json, the layout and encoding the
// loader reads, without Kibana's bookkeeping (timestamps, versions), so an exported dashboard
// replaces its source file and the diff shows only what changed.
func exportDashboardCmd(settings instance.Settings) *cobra.Command {
	var ids []string
	var folder string
	cmd := &cobra.Command{
		Use:           "dashboard",
		Short:         "Export dashboards from Kibana into _meta/kibana/7, where setup loads them from",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(ids) == 0 || folder == "" {
				return &exitError{exitUsage, fmt.Errorf("--id and --folder are required")}
			}
			b, err := instance.NewInitializedBeat(settings)
			if err != nil {
				return &exitError{1, fmt.Errorf("initialising: %w", err)}
			}
			if b.Config.Kibana == nil {
				b.Config.Kibana = conf.NewConfig()
			}
			client, err := kibana.NewKibanaClient(instance.InitKibanaConfig(b.Config), b.Info.Beat, version.GetDefaultVersion(), version.Commit(), version.BuildTime().String())
			if err != nil {
				return &exitError{1, fmt.Errorf("connecting to Kibana: %w", err)}
			}
			for _, id := range ids {
				raw, err := dashboards.Export(client, id)
				if err != nil {
					return &exitError{1, fmt.Errorf("exporting dashboard %s: %w", id, err)}
				}
				decoded, err := withoutBookkeeping(dashboards.DecodeExported(raw, b.Info.Logger))
				if err != nil {
					return &exitError{1, fmt.Errorf("exporting dashboard %s: %w", id, err)}
				}
				if err := dashboards.SaveToFolder(decoded, folder, *libversion.MustNew("7.0.0")); err != nil {
					return &exitError{1, fmt.Errorf("saving dashboard %s: %w", id, err)}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Exported dashboard %s into %s\n", id, filepath.Join(folder, "_meta", stack.KibanaDir))
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&ids, "id", nil, "Dashboard id (repeat for several)")
	cmd.Flags().StringVar(&folder, "folder", "", "Folder holding _meta/kibana (the repository root)")
	return cmd
}

// bookkeeping are the keys Kibana adds to every object it stores.
var bookkeeping = []string{"created_at", "created_by", "updated_at", "updated_by", "version"}

func withoutBookkeeping(ndjson []byte) ([]byte, error) {
	var out [][]byte
	for _, line := range bytes.Split(ndjson, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue // Kibana may end the export with a newline: the saver would choke on it
		}
		var o map[string]any
		if err := json.Unmarshal(line, &o); err != nil {
			return nil, fmt.Errorf("decoding an exported object: %w", err)
		}
		for _, k := range bookkeeping {
			delete(o, k)
		}
		b, err := json.Marshal(o)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kibana exported nothing")
	}
	return bytes.Join(out, []byte("\n")), nil
}
