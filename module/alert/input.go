package alert

import (
	"time"

	"github.com/defenderbeat/defenderbeat/internal/graphinput"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// InputType never changes: it is part of every stored cursor key.
const InputType = "defender-alert"

// spec is the Graph collection this dataset reads.
func spec(t inputkit.Timings) graphinput.Spec {
	return graphinput.Spec{
		InputType:       InputType,
		Name:            "alert",
		Path:            "/v1.0/security/alerts_v2",
		Permission:      "SecurityAlert.Read.All",
		DefaultInterval: 5 * time.Minute,
		MaxBatch:        1000,
		Transform:       Transform,
		Timings:         t,
		// The properties Microsoft Graph documents as supported by $filter on alerts_v2.
		Filterable: []string{"assignedTo", "classification", "determination", "createdDateTime", "lastUpdateDateTime", "severity", "serviceSource", "status"},
	}
}

// Dataset is the alert dataset as the beat lists it.
var Dataset = spec(inputkit.DefaultTimings()).Dataset()
