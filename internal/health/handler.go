package health

import (
	"encoding/json"
	"net/http"

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
// collection succeeded, where the cursor stands and how far behind now it is.
func addMetrics(inputs []Input, reg *monitoring.Registry) {
	if reg == nil || len(inputs) == 0 {
		return
	}
	byID := map[string]map[string]any{}
	for _, v := range monitoring.CollectStructSnapshot(reg, monitoring.Full, false) {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if id, ok := m["id"].(string); ok {
			byID[id] = m
		}
	}
	for i := range inputs {
		m := byID[inputs[i].ID]
		if m == nil {
			continue
		}
		inputs[i].LastSuccess, _ = m[inputkit.LastSuccessMetric].(string)
		inputs[i].CursorTime, _ = m["cursor_timestamp"].(string)
		if f, ok := m["lag_seconds"].(float64); ok && inputs[i].CursorTime != "" {
			inputs[i].LagSeconds = &f
		}
		if n, ok := m["lag_events"].(int64); ok {
			inputs[i].LagEvents = &n
		}
		if n, ok := m["partitions_owned"].(int64); ok {
			inputs[i].PartitionsOwn = &n
		}
	}
}
