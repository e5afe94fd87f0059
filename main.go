// defenderbeat ships Microsoft Defender XDR alerts, incidents, streaming events and
// vulnerabilities to Elasticsearch or any other libbeat output.
package main

import (
	"os"

	"github.com/defenderbeat/defenderbeat/cmd"
	_ "github.com/defenderbeat/defenderbeat/include"
)

func main() {
	if err := cmd.RootCmd.Execute(); err != nil {
		os.Exit(cmd.ExitCode(err))
	}
}
