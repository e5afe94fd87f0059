package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/dashboards"
	conf "github.com/elastic/elastic-agent-libs/config"
)

// KibanaDir is where the saved objects live in the sources, one object per file, as libbeat's
// loader reads them (kibana/7/<type>/<id>.json, the JSON-string attributes stored decoded).
const KibanaDir = "kibana/7"

// SavedObject names one shipped saved object.
type SavedObject struct {
	Type  string
	ID    string
	Title string
	File  string // path in the sources
}

// SavedObjects lists the shipped data views and dashboards, data views first (the order Kibana
// needs: dashboards reference them).
func SavedObjects() ([]SavedObject, error) {
	fsys, err := Sources()
	if err != nil {
		return nil, err
	}
	var out []SavedObject
	for _, typ := range []string{"index-pattern", "dashboard"} {
		files, err := fs.Glob(fsys, path.Join(KibanaDir, typ, "*.json"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			raw, err := fs.ReadFile(fsys, f)
			if err != nil {
				return nil, err
			}
			var o struct {
				ID         string `json:"id"`
				Type       string `json:"type"`
				Attributes struct {
					Title string `json:"title"`
				} `json:"attributes"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if o.Type != typ {
				return nil, fmt.Errorf("%s: type %q in the %s folder", f, o.Type, typ)
			}
			out = append(out, SavedObject{Type: o.Type, ID: o.ID, Title: o.Attributes.Title, File: f})
		}
	}
	return out, nil
}

// LoadDashboards imports the data views and dashboards into Kibana with libbeat's loader, so the
// setup.dashboards settings (index, string_replacements, retry, directory, file, url) behave as in
// other Beats. Unless setup.dashboards names a directory, file or URL, the loader reads the
// objects embedded in the binary. It returns what it loaded, for the user.
func LoadDashboards(ctx context.Context, info beat.Info, home string, kibanaCfg, dashboardsCfg *conf.C) ([]string, error) {
	cfg := conf.NewConfig()
	if dashboardsCfg != nil {
		if err := cfg.Merge(dashboardsCfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.SetBool("enabled", -1, true); err != nil { // setup loads them whatever setup.dashboards.enabled says
		return nil, err
	}
	var loaded []string
	if !cfg.HasField("directory") && !cfg.HasField("file") && !cfg.HasField("url") {
		dir, cleanup, err := materialise()
		if err != nil {
			return nil, err
		}
		defer cleanup()
		if err := cfg.SetString("directory", -1, dir); err != nil {
			return nil, err
		}
		objs, err := SavedObjects()
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			line := kibanaKind(o.Type) + " " + o.Title
			if o.Title != o.ID {
				line += " (" + o.ID + ")"
			}
			loaded = append(loaded, line)
		}
	} else {
		loaded = append(loaded, "the saved objects named by setup.dashboards")
	}
	if err := dashboards.ImportDashboards(ctx, info, home, kibanaCfg, cfg, nil, nil); err != nil {
		return nil, err
	}
	return loaded, nil
}

func kibanaKind(typ string) string {
	if typ == "index-pattern" {
		return "data view"
	}
	return typ
}

// materialise writes the embedded kibana/ tree to a temporary directory, the form libbeat's
// loader reads.
func materialise() (string, func(), error) {
	fsys, err := Sources()
	if err != nil {
		return "", nil, err
	}
	tmp, err := os.MkdirTemp("", "defenderbeat-kibana-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	err = fs.WalkDir(fsys, "kibana", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		raw, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, raw, 0o600)
	})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("unpacking the dashboards: %w", err)
	}
	return filepath.Join(tmp, "kibana"), cleanup, nil
}

// DataViews returns the shipped data views in the import API's format, one per line.
func DataViews() ([]byte, error) {
	objs, err := SavedObjects()
	if err != nil {
		return nil, err
	}
	fsys, _ := Sources()
	var out []byte
	for _, o := range objs {
		if o.Type != "index-pattern" {
			continue
		}
		raw, err := fs.ReadFile(fsys, o.File)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		line, _ := json.Marshal(v)
		out = append(append(out, line...), '\n')
	}
	return out, nil
}
