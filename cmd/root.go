// Package cmd is defenderbeat's command line: libbeat's commands (run, setup, test, export,
// keystore, version) plus transform, simulate and test credentials.
package cmd

import (
	"errors"
	"fmt"
	"os"

	libcmd "github.com/elastic/beats/v7/libbeat/cmd"
	"github.com/elastic/beats/v7/libbeat/cmd/instance"

	"github.com/defenderbeat/defenderbeat/beater"
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
	}
}

// RootCmd is the defenderbeat command.
var RootCmd = newRootCmd()

func newRootCmd() *libcmd.BeatsRootCmd {
	root := libcmd.GenRootCmdWithSettings(beater.New, Settings())
	root.AddCommand(genTransformCmd())
	root.AddCommand(genSimulateCmd())
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
