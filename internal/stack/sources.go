// Package stack is what defenderbeat installs into the Elastic Stack and how: the index
// templates, lifecycle policies, final ingest pipeline and "latest" transforms that give its data
// streams the m365_defender integration's layout, and the Kibana data views and dashboards.
//
// Everything is built from sources kept with the beat (_meta/elasticsearch, _meta/kibana and the
// fields.yml files) and embedded in the binary, so `setup` needs no files on disk. A dataset plugs
// in by adding files: its fields.yml, an ILM policy under
// elasticsearch/data_stream/<dataset>/ilm/ when it needs its own lifecycle, a transform under
// elasticsearch/transform/<name>/, dashboards under kibana/7/dashboard/.
package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/defenderbeat/defenderbeat/internal/yamlconv"

	"gopkg.in/yaml.v2"
)

var (
	sourcesMu sync.RWMutex
	sources   fs.FS
)

// SetSources registers the tree that holds elasticsearch/ and kibana/ (the beat's _meta folder,
// embedded by the main package).
func SetSources(fsys fs.FS) {
	sourcesMu.Lock()
	defer sourcesMu.Unlock()
	sources = fsys
}

// Sources returns the registered tree.
func Sources() (fs.FS, error) {
	sourcesMu.RLock()
	defer sourcesMu.RUnlock()
	if sources == nil {
		return nil, errors.New("no Elastic Stack assets are registered in this binary")
	}
	return sources, nil
}

// readDocument decodes one JSON or YAML file into JSON-shaped values (maps with string keys).
func readDocument(fsys fs.FS, name string) (map[string]any, error) {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	switch path.Ext(name) {
	case ".json":
		err = json.Unmarshal(raw, &doc)
	case ".yml", ".yaml":
		var y any
		if err = yaml.Unmarshal(raw, &y); err == nil {
			var ok bool
			if doc, ok = yamlconv.JSONShaped(y).(map[string]any); !ok {
				err = errors.New("not a mapping")
			}
		}
	default:
		err = errors.New("neither .json nor .yml")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return doc, nil
}

// dirsHolding lists, sorted, the names of the folders under dir that contain file.
func dirsHolding(fsys fs.FS, dir, file string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := fs.Stat(fsys, path.Join(dir, e.Name(), file)); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
