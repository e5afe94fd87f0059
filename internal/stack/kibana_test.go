package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/fieldscheck"
	"github.com/defenderbeat/defenderbeat/internal/stacktest"
)

type savedObject struct {
	path string
	raw  []byte
	obj  map[string]any
}

func shippedObjects(t *testing.T) []savedObject {
	t.Helper()
	objs, err := SavedObjects()
	if err != nil {
		t.Fatal(err)
	}
	fsys, _ := Sources()
	var out []savedObject
	for _, o := range objs {
		raw, err := fs.ReadFile(fsys, o.File)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, savedObject{path: o.File, raw: raw, obj: m})
	}
	return out
}

// The files are exactly what `export dashboard` writes (libbeat's saver: sorted keys, four-space
// indent), so exporting an unchanged dashboard gives no diff.
func TestSavedObjectsAreInExportForm(t *testing.T) {
	objs := shippedObjects(t)
	types := map[string]int{}
	for _, o := range objs {
		want, _ := json.MarshalIndent(o.obj, "", "    ")
		if !bytes.Equal(o.raw, want) {
			t.Errorf("%s is not in the export form; rewrite it with `defenderbeat export dashboard` or the same encoding", o.path)
		}
		if !strings.HasSuffix(o.path, "/"+fmt.Sprint(o.obj["id"])+".json") && o.obj["type"] == "dashboard" {
			t.Errorf("%s: a dashboard's file is named after its id (the loader looks references up by id)", o.path)
		}
		types[fmt.Sprint(o.obj["type"])]++
	}
	if types["dashboard"] < 5 || types["index-pattern"] != 2 {
		t.Fatalf("shipped objects: %v", types)
	}
}

var (
	kqlField     = regexp.MustCompile(`([A-Za-z_@][\w.@]*)\s*:`)
	painlessDocs = regexp.MustCompile(`'(@timestamp|\w+(?:\.\w+)+)'`) // field names in scripts
)

// fieldTypes are the declared fields (include/fields.yml) plus the data views' runtime fields.
type fieldTypes struct {
	schema  *fieldscheck.Schema
	runtime map[string]string
}

func (f fieldTypes) typeOf(field string) string {
	if t, ok := f.runtime[field]; ok {
		return t
	}
	return f.schema.Type(field)
}

func loadFieldTypes(t *testing.T, objs []savedObject) fieldTypes {
	t.Helper()
	schema, err := fieldscheck.Load("../../include/fields.yml")
	if err != nil {
		t.Fatal(err)
	}
	ft := fieldTypes{schema: schema, runtime: map[string]string{}}
	for _, o := range objs {
		if o.obj["type"] != "index-pattern" {
			continue
		}
		raw, _ := get(o.obj, "attributes", "runtimeFieldMap").(string)
		if raw == "" {
			continue
		}
		var rt map[string]struct {
			Type   string `json:"type"`
			Script struct {
				Source string `json:"source"`
			} `json:"script"`
		}
		if err := json.Unmarshal([]byte(raw), &rt); err != nil {
			t.Fatalf("%s: runtimeFieldMap: %v", o.path, err)
		}
		for name, f := range rt {
			ft.runtime[name] = f.Type
			// The scripts read only declared fields.
			for _, m := range painlessDocs.FindAllStringSubmatch(f.Script.Source, -1) {
				if schema.Type(m[1]) == "" {
					t.Errorf("%s: runtime field %s reads %s, which no fields.yml declares", o.path, name, m[1])
				}
			}
		}
	}
	return ft
}

var numeric = map[string]bool{"long": true, "integer": true, "short": true, "byte": true, "double": true, "float": true, "half_float": true, "scaled_float": true}

// operationAccepts says which field types Lens offers for an operation.
func operationAccepts(op, typ string) bool {
	aggregatable := typ != "text" && typ != "match_only_text" && typ != "" && typ != "object" && typ != "flattened"
	switch op {
	case "date_histogram":
		return typ == "date"
	case "terms", "unique_count", "last_value":
		return aggregatable
	case "median", "average", "sum", "percentile", "standard_deviation":
		return numeric[typ]
	case "max", "min":
		return numeric[typ] || typ == "date"
	}
	return false
}

// Every field a panel uses (columns, KQL in queries and filters, controls) is declared in
// fields.yml or is a data view runtime field, with a type the operation accepts; every layer
// points at a shipped data view through the references Kibana resolves; visualizations name
// existing columns.
func TestDashboardPanelsUseDeclaredFields(t *testing.T) {
	objs := shippedObjects(t)
	fields := loadFieldTypes(t, objs)
	dataViews := map[string]bool{}
	for _, o := range objs {
		if o.obj["type"] == "index-pattern" {
			dataViews[fmt.Sprint(o.obj["id"])] = true
		}
	}
	checkKQL := func(where, q string) {
		for _, m := range kqlField.FindAllStringSubmatch(q, -1) {
			if fields.typeOf(m[1]) == "" {
				t.Errorf("%s: query %q uses %s, which is not declared", where, q, m[1])
			}
		}
	}
	panels := 0
	for _, o := range objs {
		if o.obj["type"] != "dashboard" {
			continue
		}
		refs := map[string]string{}
		for _, r := range asList(o.obj["references"]) {
			refs[fmt.Sprint(get(r, "name"))] = fmt.Sprint(get(r, "id"))
			if get(r, "type") == "index-pattern" && !dataViews[fmt.Sprint(get(r, "id"))] {
				t.Errorf("%s: reference %v names a data view defenderbeat does not ship", o.path, r)
			}
		}
		for _, f := range asList(get(o.obj, "attributes", "kibanaSavedObjectMeta", "searchSourceJSON", "filter")) {
			key, _ := get(f, "meta", "key").(string)
			if fields.typeOf(key) == "" {
				t.Errorf("%s: dashboard filter on undeclared field %q", o.path, key)
			}
			if ref, _ := get(f, "meta", "indexRefName").(string); refs[ref] == "" {
				t.Errorf("%s: filter %q has no reference %q", o.path, key, ref)
			}
		}
		seen := map[string]bool{}
		for _, p := range asList(get(o.obj, "attributes", "panelsJSON")) {
			panels++
			pid, _ := get(p, "panelIndex").(string)
			where := fmt.Sprintf("%s panel %q", o.path, get(p, "title"))
			if pid == "" || seen[pid] || get(p, "gridData", "i") != pid {
				t.Errorf("%s: panelIndex %q missing, repeated or not the grid id", where, pid)
			}
			seen[pid] = true
			if x, w := get(p, "gridData", "x").(float64), get(p, "gridData", "w").(float64); x+w > 48 {
				t.Errorf("%s: panel exceeds the 48-column grid", where)
			}
			if get(p, "type") != "lens" {
				t.Errorf("%s: type %v, want a by-value lens panel", where, get(p, "type"))
				continue
			}
			attrs := get(p, "embeddableConfig", "attributes")
			state := get(attrs, "state")
			checkKQL(where, fmt.Sprint(get(state, "query", "query")))
			layerRefs := map[string]bool{}
			for _, r := range asList(get(attrs, "references")) {
				layerRefs[fmt.Sprint(get(r, "name"))] = true
			}
			layers, _ := get(state, "datasourceStates", "formBased", "layers").(map[string]any)
			if len(layers) == 0 {
				t.Errorf("%s: no layers", where)
			}
			columnIDs := map[string]bool{}
			for lid, layer := range layers {
				name := "indexpattern-datasource-layer-" + lid
				if !layerRefs[name] || !dataViews[refs[pid+":"+name]] {
					t.Errorf("%s: layer %s lacks its data view reference (panel: %v, dashboard: %q)", where, lid, layerRefs[name], refs[pid+":"+name])
				}
				cols, _ := get(layer, "columns").(map[string]any)
				var order []string
				for _, c := range asList(get(layer, "columnOrder")) {
					order = append(order, fmt.Sprint(c))
				}
				var keys []string
				for id, col := range cols {
					keys = append(keys, id)
					columnIDs[id] = true
					op, _ := get(col, "operationType").(string)
					src, _ := get(col, "sourceField").(string)
					if q, ok := get(col, "filter", "query").(string); ok {
						checkKQL(where, q)
					}
					for _, f := range asList(get(col, "params", "filters")) {
						checkKQL(where, fmt.Sprint(get(f, "input", "query")))
					}
					if sf, ok := get(col, "params", "sortField").(string); ok && fields.typeOf(sf) != "date" {
						t.Errorf("%s: last value sorted on %s, not a date", where, sf)
					}
					if ob, ok := get(col, "params", "orderBy", "columnId").(string); ok && cols[ob] == nil {
						t.Errorf("%s: terms ordered by missing column %s", where, ob)
					}
					switch op {
					case "count":
						if src != "___records___" && fields.typeOf(src) == "" {
							t.Errorf("%s: count of undeclared %s", where, src)
						}
					case "filters":
					default:
						typ := fields.typeOf(src)
						if typ == "" {
							t.Errorf("%s: %s of %s, which is not declared in fields.yml", where, op, src)
						} else if !operationAccepts(op, typ) {
							t.Errorf("%s: %s does not apply to %s (%s)", where, op, src, typ)
						}
					}
				}
				sort.Strings(keys)
				sorted := append([]string(nil), order...)
				sort.Strings(sorted)
				if strings.Join(keys, ",") != strings.Join(sorted, ",") {
					t.Errorf("%s: columnOrder %v does not list the columns %v", where, order, keys)
				}
			}
			vis, _ := json.Marshal(get(state, "visualization"))
			for _, id := range regexp.MustCompile(`"(?:accessors|xAccessor|splitAccessor|metricAccessor|columnId|primaryGroups|metrics)":\s*(\[[^\]]*\]|"[^"]*")`).FindAllStringSubmatch(string(vis), -1) {
				for _, s := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(id[1], -1) {
					if !columnIDs[s[1]] {
						t.Errorf("%s: the visualization names column %s, which no layer has", where, s[1])
					}
				}
			}
			switch get(attrs, "visualizationType") {
			case "lnsXY", "lnsPie", "lnsDatatable", "lnsMetric":
			default:
				t.Errorf("%s: visualization type %v", where, get(attrs, "visualizationType"))
			}
		}
	}
	if panels < 20 {
		t.Fatalf("only %d panels checked", panels)
	}
}

// setup's Kibana step: libbeat's loader sends the embedded data views, then each dashboard, to
// the import API, which accepts them all (a missing data view would be a missing reference).
func TestDashboardsImportIntoKibana(t *testing.T) {
	kb := stacktest.NewKibana()
	defer kb.Close()
	kibanaCfg := conf.MustNewConfigFrom(map[string]any{"host": kb.URL()})
	for run := 0; run < 2; run++ {
		if _, err := LoadDashboards(context.Background(), testInfo(), t.TempDir(), kibanaCfg, nil); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	shipped, err := SavedObjects()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, o := range shipped {
		want = append(want, o.Type+"/"+o.ID)
	}
	sort.Strings(want)
	if got := kb.Objects(); strings.Join(got, " ") != strings.Join(want, " ") || len(got) < 7 {
		t.Fatalf("Kibana holds %v, want %v", got, want)
	}
	imports := kb.Imports()
	if len(imports) != 2*len(shipped) || imports[0][0]["type"] != "index-pattern" || imports[1][0]["type"] != "index-pattern" {
		t.Fatalf("import order: %d imports, first %v", len(imports), imports[0][0]["type"])
	}
	// Kibana stores the JSON-string attributes the loader encodes.
	if _, ok := get(kb.Object("dashboard", "defenderbeat-alerts"), "attributes", "panelsJSON").(string); !ok {
		t.Error("panelsJSON did not reach Kibana as a JSON string")
	}
}

func TestKibanaRefusesADashboardWithoutItsDataView(t *testing.T) {
	kb := stacktest.NewKibana()
	defer kb.Close()
	// Only the dashboards, as with setup.dashboards.only_dashboards on an empty Kibana.
	_, err := LoadDashboards(context.Background(), testInfo(), t.TempDir(),
		conf.MustNewConfigFrom(map[string]any{"host": kb.URL()}), conf.MustNewConfigFrom(map[string]any{"only_dashboards": true}))
	if err == nil || !strings.Contains(err.Error(), "missing_references") {
		t.Fatalf("err = %v, want Kibana's missing_references", err)
	}
}
