package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/elastic/beats/v7/libbeat/cmd/instance"

	"github.com/defenderbeat/defenderbeat/beater"
	"github.com/defenderbeat/defenderbeat/config"
)

// probeTimeout bounds one input's check: a token request plus one API call, retries included.
const probeTimeout = 2 * time.Minute

func genTestCredentialsCmd() *cobra.Command {
	return &cobra.Command{
		Use:           "credentials",
		Short:         "Acquire a token and call the API once for every configured input",
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := instance.NewInitializedBeat(Settings())
			if err != nil {
				return &exitError{1, fmt.Errorf("loading the configuration: %w", err)}
			}
			sub, err := b.BeatConfig()
			if err != nil {
				return &exitError{1, err}
			}
			cfg, err := config.Unpack(sub)
			if err != nil {
				return &exitError{1, err}
			}
			if len(cfg.Inputs) == 0 {
				return &exitError{1, fmt.Errorf("no inputs configured under defenderbeat.inputs")}
			}
			log := b.Info.Logger.Named("test-credentials")
			failed := 0
			for i, in := range cfg.Inputs {
				id, _ := in.String("id", -1)
				typ, _ := in.String("type", -1)
				ctx, cancel := context.WithTimeout(cmd.Context(), probeTimeout)
				err := beater.ProbeInput(ctx, in, log)
				cancel()
				if err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "defenderbeat.inputs[%d] %s (%s)... FAILED\n  %v\n", i, id, typ, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "defenderbeat.inputs[%d] %s (%s)... OK\n", i, id, typ)
			}
			if failed > 0 {
				return &exitError{1, fmt.Errorf("%d of %d input(s) failed", failed, len(cfg.Inputs))}
			}
			return nil
		},
	}
}
