package cmd

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v2"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/cmd/instance"
	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/beater"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

func genSimulateCmd() *cobra.Command {
	var (
		duration  time.Duration
		seed      int64
		faults    string
		serveOnly bool
		change    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run every dataset against a built-in simulated Microsoft tenant",
		Long: `Starts a simulated tenant (Entra ID token endpoint, Microsoft Graph security API and Defender
for Endpoint API, over TLS with its own CA, on 127.0.0.1; the Streaming API's event hub, plain
AMQP on 127.0.0.1, receiving Advanced Hunting records of every table it simulates; and the same
records in the Streaming API's storage account, plain HTTP on 127.0.0.1) and runs every
dataset against it with a built-in configuration, printing documents to the console until Ctrl-C
or --duration. The inputs of defenderbeat.yml are not used. Any -E setting still applies, e.g.
-E output.console.enabled=false -E output.file.path=DIR. With --serve-only it only serves the
tenant and prints the settings to point a defenderbeat.yml at it. --faults spoils answers on
purpose to show how the inputs cope. With slowpage, for example, an alerts page takes 45s to
arrive, longer than http_client_timeout (30s), yet never pauses for long, and it is read whole:
http_client_timeout only counts time spent waiting on the network.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			faultList, err := simulator.ParseFaults(faults)
			if err != nil {
				return &exitError{exitUsage, fmt.Errorf("--faults: %w", err)}
			}
			srv, err := simulator.Start(simulator.Config{Seed: seed, ChangeEvery: change, Streaming: &simulator.StreamingConfig{Storage: true}})
			if err != nil {
				return &exitError{1, fmt.Errorf("starting the simulated tenant: %w", err)}
			}
			defer srv.Close()
			for _, f := range faultList {
				srv.AddFault(f)
			}
			if serveOnly {
				printServeOnly(cmd, srv)
				waitForSignal(duration)
				return nil
			}
			return runSimulated(srv, duration)
		},
	}
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (default: run until Ctrl-C)")
	cmd.Flags().Int64Var(&seed, "seed", 1, "seed of the simulated data (same seed, same tenant)")
	cmd.Flags().StringVar(&faults, "faults", "", "comma-separated faults to inject: "+faultHelp())
	cmd.Flags().BoolVar(&serveOnly, "serve-only", false, "only serve the simulated tenant and print how to connect to it")
	cmd.Flags().DurationVar(&change, "change-every", 15*time.Second, "how often the simulated tenant updates and adds records")
	return cmd
}

// simulatedInputs is the built-in configuration: every dataset, pointed at the simulator.
func simulatedInputs(srv *simulator.Server) []map[string]any {
	common := func(typ, id string) map[string]any {
		return map[string]any{
			"type":                        typ,
			"id":                          id,
			"tenant_id":                   srv.TenantID(),
			"client_id":                   srv.ClientID(),
			"client_secret":               "${DEFENDERBEAT_SIMULATOR_SECRET}",
			"login_url":                   srv.URL(),
			"request_url":                 srv.URL(),
			"ssl.certificate_authorities": []string{srv.CAFile()},
			"interval":                    "10s",
		}
	}
	graph := func(typ, id string) map[string]any {
		in := common(typ, id)
		in["initial_interval"] = "72h"
		in["include_unknown_enum_members"] = true
		return in
	}
	var inputs []map[string]any
	for _, name := range beater.Datasets() {
		switch name {
		case "alert":
			inputs = append(inputs, graph("defender-alert", "simulated-alerts"))
		case "incident":
			inputs = append(inputs, graph("defender-incident", "simulated-incidents"))
		case "event":
			// The Streaming API's hub; one instance, so its checkpoints live in the registry.
			inputs = append(inputs, eventInput(srv))
			// The same records from the storage account; same _id, so indexed once.
			inputs = append(inputs, storageInput(srv))
		case "vulnerability":
			// A full export first, then the changes the tenant makes every --change-every.
			in := common("defender-vulnerability", "simulated-vulnerabilities")
			// The simulator serves the export files itself, not from Azure Storage.
			in["download_hosts"] = []string{srv.Hostname()}
			inputs = append(inputs, in)
		}
	}
	return inputs
}

func eventInput(srv *simulator.Server) map[string]any {
	return map[string]any{
		"type":                      "defender-event",
		"id":                        "simulated-events",
		"eventhub":                  srv.EventHubName(),
		"connection_string":         srv.EventHubConnectionString(),
		"checkpoint_store":          "local",
		"processor_update_interval": "1s",
		"partition_receive_timeout": "1s",
	}
}

func storageInput(srv *simulator.Server) map[string]any {
	return map[string]any{
		"type":                              "defender-event-storage",
		"id":                                "simulated-events-storage",
		"storage_account_connection_string": srv.StorageConnectionString(),
		"interval":                          "10s",
	}
}

func runSimulated(srv *simulator.Server, duration time.Duration) error {
	dir, err := os.MkdirTemp("", "defenderbeat-simulate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	cfg := map[string]any{
		"defenderbeat.inputs": simulatedInputs(srv),
		"output.console":      map[string]any{"enabled": true},
		// Documents should show up as soon as they are read, not after the queue's 10 s flush.
		"queue.mem.flush.timeout": "100ms",
		"logging.to_stderr":       true,
		"logging.level":           "info",
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "defenderbeat-simulate.yml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return err
	}
	// The secret reaches the config through the environment, as a real one should.
	os.Setenv("DEFENDERBEAT_SIMULATOR_SECRET", srv.ClientSecret())

	if err := flag.CommandLine.Set("c", path); err != nil {
		return err
	}
	if f := flag.CommandLine.Lookup("path.data"); f != nil && f.Value.String() == "" && !setWithE("path.data") {
		if err := flag.CommandLine.Set("path.data", filepath.Join(dir, "data")); err != nil {
			return err
		}
	}
	if f := flag.CommandLine.Lookup("path.logs"); f != nil && f.Value.String() == "" && !setWithE("path.logs") {
		_ = flag.CommandLine.Set("path.logs", filepath.Join(dir, "logs"))
	}
	create := newBeater
	if duration > 0 {
		// Stopping the beater is what libbeat does on Ctrl-C, and it works on every system
		// (Windows has no signal to send oneself).
		create = func(b *beat.Beat, raw *conf.C) (beat.Beater, error) {
			bt, err := newBeater(b, raw)
			if err == nil {
				time.AfterFunc(duration, bt.Stop)
			}
			return bt, err
		}
	}
	fmt.Fprintf(os.Stderr, "Simulated tenant at %s; running %s. Ctrl-C stops.\n", srv.URL(), strings.Join(beater.Datasets(), ", "))
	if err := instance.Run(Settings(), create); err != nil {
		return &exitError{1, err}
	}
	return nil
}

func printServeOnly(cmd *cobra.Command, srv *simulator.Server) {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, `Simulated tenant is serving. Point an input at it with:

  defenderbeat.inputs:
    - type: defender-alert        # or defender-incident, defender-vulnerability
      id: simulated-alerts
      tenant_id: %s
      client_id: %s
      client_secret: %s
      login_url: %s
      request_url: %s
      ssl.certificate_authorities: [%q]

  The same settings serve type defender-vulnerability (Defender for Endpoint API), which also
  needs to accept the simulator as the host of the export files:

      download_hosts: [%q]

  The Streaming API's event hub (Advanced Hunting records of %d tables, more every
  --change-every) is read with:

    - type: defender-event
      id: simulated-events
      eventhub: %s
      connection_string: "%s"
      checkpoint_store: local      # no storage account: checkpoints in the beat's registry

  The same records in the Streaming API's storage account (one container per table, hourly
  blobs) are read with:

    - type: defender-event-storage
      id: simulated-events-storage
      storage_account_connection_string: "%s"

Ctrl-C stops it.
`, srv.TenantID(), srv.ClientID(), srv.ClientSecret(), srv.URL(), srv.URL(), srv.CAFile(), srv.Hostname(),
		len(simulator.StreamingTables), srv.EventHubName(), srv.EventHubConnectionString(), srv.StorageConnectionString())
}

func waitForSignal(duration time.Duration) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	if duration > 0 {
		select {
		case <-sig:
		case <-time.After(duration):
		}
		return
	}
	<-sig
}

// faultHelp lists the fault presets with what each does.
func faultHelp() string {
	names := simulator.FaultNames()
	keys := make([]string, 0, len(names))
	for name := range names {
		keys = append(keys, name)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, name := range keys {
		fmt.Fprintf(&b, "\n  %-12s %s", name, names[name])
	}
	return b.String()
}

// setWithE reports whether -E gave setting: a flag for the same path would override it, so the
// simulation's temporary default must not be set then (the registry would go one way and the
// rest of path.data the other).
func setWithE(setting string) bool {
	f := flag.CommandLine.Lookup("E")
	if f == nil {
		return false
	}
	settings, ok := f.Value.(*conf.SettingsFlag)
	if !ok {
		return false
	}
	v, err := settings.Config().String(setting, -1)
	return err == nil && v != ""
}
