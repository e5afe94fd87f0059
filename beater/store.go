package beater

import (
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/statestore"
	"github.com/elastic/beats/v7/libbeat/statestore/backend/memlog"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/paths"

	"github.com/defenderbeat/defenderbeat/config"
)

// stateStore keeps every input's cursor in one memlog registry under path.data, the same
// store filebeat uses: it is written only when the output ACKs, and survives restarts.
type stateStore struct {
	registry      *statestore.Registry
	storeName     string
	cleanInterval time.Duration
}

var _ statestore.States = (*stateStore)(nil)

func openStateStore(info beat.Info, log *logp.Logger, cfg config.Registry, beatPaths *paths.Path) (*stateStore, error) {
	backend, err := memlog.New(log, memlog.Settings{
		Root:     beatPaths.Resolve(paths.Data, cfg.Path),
		FileMode: cfg.Permissions,
	})
	if err != nil {
		return nil, err
	}
	return &stateStore{
		registry:      statestore.NewRegistry(backend),
		storeName:     info.Beat,
		cleanInterval: cfg.CleanInterval,
	}, nil
}

func (s *stateStore) Close() { s.registry.Close() }

// StoreFor returns the one store all input types share; keys are prefixed by input type and id.
func (s *stateStore) StoreFor(string) (*statestore.Store, error) {
	return s.registry.Get(s.storeName)
}

func (s *stateStore) CleanupInterval() time.Duration { return s.cleanInterval }
