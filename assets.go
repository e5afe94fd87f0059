package main

import (
	"embed"
	"io/fs"

	"github.com/defenderbeat/defenderbeat/internal/stack"
)

// stackAssets are what `setup` installs besides the generated templates: the ingest pipeline,
// lifecycle policies and transforms (_meta/elasticsearch), and the data views and dashboards
// (_meta/kibana). Embedding them here, where _meta lives, lets setup run from any directory.
//
//go:embed _meta/elasticsearch _meta/kibana
var stackAssets embed.FS

func init() {
	sources, err := fs.Sub(stackAssets, "_meta")
	if err != nil {
		panic(err) // the pattern above guarantees the folder
	}
	stack.SetSources(sources)
}
