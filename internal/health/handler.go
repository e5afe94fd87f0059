package health

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/elastic/elastic-agent-libs/monitoring"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// Path is where the beat's HTTP endpoint serves the inputs' health.
const Path = "/health"

// Report is the body of the health endpoint.
type Report struct {
	Status string  `json:"status"` // the worst input's
	Inputs []Input `json:"inputs"`
}

// Handler serves the inputs' health, with each input's last successful collection and cursor
// lag read from its metrics (the registry the /inputs/ endpoint serves). The answer is 503 while
// any input is FAILED, which only a change of configuration, credentials or permissions mends,
// and 200 otherwise: a DEGRADED input still collects (it retries, or reads in a lesser way) and
// its cursor keeps what it has not yet read, so it is reported in the body, not as unavailable.
func Handler(reg *Registry, inputMetrics *monitoring.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		inputs := reg.Snapshot()
		addMetrics(inputs, inputMetrics)
		report := Report{Status: Overall(inputs), Inputs: inputs}
		code := http.StatusOK
		if report.Status == Failed {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(code)
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		if _, pretty := r.URL.Query()["pretty"]; pretty {
			enc.SetIndent("", "  ")
		}
		_ = enc.Encode(report)
	})
}

// addMetrics copies, per input, the metrics an operator reads health from: when the last
// collection succeeded, where the cursor stands and how far behind now it is. A cursor input
// keeps them in the registry of its source ("<id>::tenant-<tenant>"), beside the input's own.
func addMetrics(inputs []Input, reg *monitoring.Registry) {
	if reg == nil || len(inputs) == 0 {
		return
	}
	var tables []map[string]any
	collectTables(monitoring.CollectStructSnapshot(reg, monitoring.Full, false), &tables)
	for i := range inputs {
		in := &inputs[i]
		for _, m := range tables {
			id, _ := m["id"].(string)
			if id != in.ID && !strings.HasPrefix(id, in.ID+"::") {
				continue
			}
			if v, ok := m[inputkit.LastSuccessMetric].(string); ok && v != "" {
				in.LastSuccess = v
			}
			if v, ok := m["cursor_timestamp"].(string); ok && v != "" {
				in.CursorTime = v
				if f, ok := m["lag_seconds"].(float64); ok {
					in.LagSeconds = &f
				}
			}
			if n, ok := m["lag_events"].(int64); ok {
				in.LagEvents = &n
			}
			if n, ok := m["partitions_owned"].(int64); ok {
				in.PartitionsOwned = &n
			}
		}
	}
}

// collectTables finds every metrics table that names an input id, at any depth.
func collectTables(snapshot map[string]any, into *[]map[string]any) {
	if _, ok := snapshot["id"].(string); ok {
		*into = append(*into, snapshot)
	}
	for _, v := range snapshot {
		if m, ok := v.(map[string]any); ok {
			collectTables(m, into)
		}
	}
}
