// Package cmd is defenderbeat's command line: libbeat's commands (run, setup, test, export,
// keystore, version) plus transform, simulate and test credentials.
package cmd

import (
	"errors"
	"fmt"
	"os"

	"github.com/elastic/beats/v7/libbeat/cfgfile"
	libcmd "github.com/elastic/beats/v7/libbeat/cmd"
	"github.com/elastic/beats/v7/libbeat/cmd/instance"
	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/include"
)

// Name is the beat's name: config file, registry and fields asset are keyed by it.
const Name = include.BeatName

// Settings are the libbeat instance settings shared by every command that starts the beat.
func Settings() instance.Settings {
	return instance.Settings{
		Name:            Name,
		HasDashboards:   true,
		ElasticLicensed: true,
		IndexManagement: indexSupport,
		ConfigOverrides: []cfgfile.ConditionalOverride{
			{Check: func(c *conf.C) bool { return !c.HasField("queue") }, Config: queueDefaults},
		},
	}
}

// queueDefaults replace libbeat's memory queue defaults (3,200 events, 10 s flush) when the
// configuration sets no queue: defenderbeat's documents are large (vulnerability rows keep
// event.original) and arrive in bursts from API pages and export files, so a smaller queue
// bounds memory (measured in docs/benchmarks.md), and polled data should not wait 10 s to leave.
// Any queue setting in the configuration file replaces these.
var queueDefaults = conf.MustNewConfigFrom(map[string]any{
	"queue.mem.events":           1024,
	"queue.mem.flush.min_events": 512,
	"queue.mem.flush.timeout":    "1s",
})

// RootCmd is the defenderbeat command.
var RootCmd = newRootCmd()

func newRootCmd() *libcmd.BeatsRootCmd {
	root := libcmd.GenRootCmdWithSettings(newBeater, Settings())
	adoptSetupCmd(root.SetupCmd, Settings())
	adoptExportCmd(root.ExportCmd, Settings())
	root.AddCommand(genTransformCmd())
	root.AddCommand(genSimulateCmd())
	root.AddCommand(genCursorCmd())
	root.TestCmd.AddCommand(genTestCredentialsCmd())
	return root
}

// ExitCode maps a command's error to the process exit status, printing it first.
func ExitCode(err error) int {
	var exit *exitError
	if errors.As(err, &exit) {
		fmt.Fprintln(os.Stderr, "Error:", exit.err)
		return exit.code
	}
	return 1
}
