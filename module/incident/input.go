package incident

import (
	"time"

	"github.com/defenderbeat/defenderbeat/internal/graphinput"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// InputType never changes: it is part of every stored cursor key.
const InputType = "defender-incident"

// path is the Graph collection this dataset reads.
const path = "/v1.0/security/incidents"

// spec reads incidents with their alerts (expand.go).
func spec(t inputkit.Timings) graphinput.Spec {
	return graphinput.Spec{
		InputType:       InputType,
		Name:            "incident",
		Path:            path,
		Permission:      "SecurityIncident.Read.All",
		DefaultInterval: time.Minute,
		MaxBatch:        50,
		Transform:       Transform,
		Reader:          alertsOption,
		ReaderOptions:   alertsOptions{},
		Timings:         t,
		// The properties Microsoft Graph documents as supported by $filter on incidents.
		Filterable: []string{"assignedTo", "classification", "createdDateTime", "determination", "lastUpdateDateTime", "severity", "status"},
	}
}

// Dataset is the incident dataset as the beat lists it.
var Dataset = spec(inputkit.DefaultTimings()).Dataset()
