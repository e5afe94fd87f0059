package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/elastic/beats/v7/libbeat/cmd/instance"

	"github.com/defenderbeat/defenderbeat/beater"
	"github.com/defenderbeat/defenderbeat/config"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

func genCursorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cursor",
		Short: "Show or move the positions the inputs keep in path.data (the beat must be stopped)",
	}
	cmd.AddCommand(genCursorListCmd(), genCursorResetCmd(), genCursorSetCmd())
	return cmd
}

// openCursors loads the configuration like the beat (-c, -E, --path.data) and opens its
// registry, refusing while a beat runs on it.
func openCursors(write bool) (*beater.Cursors, error) {
	b, err := instance.NewInitializedBeat(Settings())
	if err != nil {
		return nil, &exitError{1, fmt.Errorf("loading the configuration: %w", err)}
	}
	sub, err := b.BeatConfig()
	if err != nil {
		return nil, &exitError{1, err}
	}
	cfg, err := config.Unpack(sub)
	if err != nil {
		return nil, &exitError{1, err}
	}
	c, err := beater.OpenCursors(b.Info, b.Paths, cfg, write)
	if err != nil {
		return nil, &exitError{1, err}
	}
	return c, nil
}

func genCursorListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every stored position: input, tenant, where it stands, when it last moved, its lag",
		Args:  cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openCursors(false)
			if err != nil {
				return err
			}
			defer c.Close()
			now := time.Now()
			entries, err := c.List(now)
			if err != nil {
				return &exitError{1, err}
			}
			if asJSON {
				if entries == nil {
					entries = []beater.CursorEntry{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			printCursors(cmd.OutOrStdout(), c.Dir, entries, now)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, for scripts")
	return cmd
}

func printCursors(out io.Writer, dir string, entries []beater.CursorEntry, now time.Time) {
	if len(entries) == 0 {
		fmt.Fprintf(out, "No stored positions in %s.\n", dir)
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTYPE\tTENANT\tPOSITION\tLAST MOVED\tLAG")
	for _, e := range entries {
		moved, lag := "-", "-"
		if e.Moved != nil {
			moved = e.Moved.Format(time.RFC3339) + " (" + ago(now.Sub(*e.Moved)) + " ago)"
		}
		if e.Lag != nil {
			lag = ago(time.Duration(*e.Lag * float64(time.Second)))
		}
		tenant := e.Tenant
		if tenant == "" {
			tenant = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.InputType, tenant, e.Summary, moved, lag)
	}
	_ = w.Flush()
}

// ago renders a duration for people: seconds below a minute, then minutes, hours, days.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	default:
		return fmt.Sprintf("%.1fd", d.Hours()/24)
	}
}

func genCursorResetCmd() *cobra.Command {
	var id, to string
	var fullExport bool
	cmd := &cobra.Command{
		Use:   "reset --id ID [--to TIME] [--full-export]",
		Short: "Make an input read again: from TIME, or as on its first run (initial_interval)",
		Long: `Without --to the input's stored position is forgotten: its next start reads as on its first
run (Graph inputs: initial_interval back; vulnerability: a full export and the delta from
initial_interval; event with checkpoint_store: local: processor_start_position). With --to the
input reads again from TIME (Graph: lastUpdateDateTime, at most 180 days back; vulnerability:
the delta's sinceTime, at most 14 days back). --full-export (vulnerability) makes the next run
collect a full export and keeps the delta's position. Documents read again keep their _id, so
Elasticsearch does not index them twice. TIME is RFC 3339 (2026-11-20T08:00:00Z), a date
(2026-11-20, UTC) or a duration back from now (72h, 30d).`,
		Args: cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return moveCursor(cmd.OutOrStdout(), id, to, fullExport)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the input's id (required)")
	cmd.Flags().StringVar(&to, "to", "", "read again from this time")
	cmd.Flags().BoolVar(&fullExport, "full-export", false, "vulnerability: collect a full export at the next run")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func genCursorSetCmd() *cobra.Command {
	var id, to string
	cmd := &cobra.Command{
		Use:   "set --id ID --to TIME",
		Short: "Move an input's position to TIME, e.g. where the m365_defender integration stopped",
		Long: `Moves a Graph input's cursor to the lastUpdateDateTime TIME (or a vulnerability input's delta
sinceTime), so its next start reads from there: when moving from the integration, give the
newest lastUpdateDateTime it indexed. Same limits and TIME formats as reset.`,
		Args: cobra.NoArgs, SilenceUsage: true, SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return moveCursor(cmd.OutOrStdout(), id, to, false)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the input's id (required)")
	cmd.Flags().StringVar(&to, "to", "", "the time to read from (required)")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func moveCursor(out io.Writer, id, to string, fullExport bool) error {
	now := time.Now().UTC()
	m := inputkit.Move{FullExport: fullExport, Now: now}
	if to != "" {
		t, err := parseCursorTime(to, now)
		if err != nil {
			return &exitError{exitUsage, err}
		}
		m.To = t
	}
	c, err := openCursors(true)
	if err != nil {
		return err
	}
	defer c.Close()
	moved, err := c.Move(id, m)
	for _, mv := range moved {
		switch {
		case mv.Before == "" && mv.Removed:
			fmt.Fprintf(out, "%s %s: nothing stored yet; the first start reads as on a first run.\n", mv.InputType, mv.Key)
		case mv.Before == "":
			fmt.Fprintf(out, "%s %s: nothing stored yet; the first start reads from %s.\n", mv.InputType, mv.Key, m.To.Format(time.RFC3339))
		case mv.Removed:
			fmt.Fprintf(out, "%s %s: forgot %s; the next start reads as on a first run.\n", mv.InputType, mv.Key, mv.Before)
		case fullExport && m.To.IsZero():
			fmt.Fprintf(out, "%s %s: was %s; the next run collects a full export.\n", mv.InputType, mv.Key, mv.Before)
		default:
			fmt.Fprintf(out, "%s %s: was %s; the next start reads again from %s.\n", mv.InputType, mv.Key, mv.Before, m.To.Format(time.RFC3339))
		}
	}
	if err != nil {
		return &exitError{1, err}
	}
	return nil
}

// parseCursorTime reads RFC 3339, a date (UTC midnight) or a duration back from now (Go's
// units, or days: 30d).
func parseCursorTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	back := strings.TrimPrefix(s, "-")
	if days, ok := strings.CutSuffix(back, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n > 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(back); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--to: %q is neither an RFC 3339 time (2026-11-20T08:00:00Z), a date (2026-11-20) nor a duration back from now (72h, 30d)", s)
}
