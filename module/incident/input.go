package incident

import (
	"time"

	"github.com/defenderbeat/defenderbeat/internal/graphinput"
)

// InputType never changes: it is part of every stored cursor key.
const InputType = "defender-incident"

// Spec is the Graph collection this dataset reads.
var Spec = graphinput.Spec{
	InputType:       InputType,
	Dataset:         "incident",
	Path:            "/v1.0/security/incidents",
	Permission:      "SecurityIncident.Read.All",
	DefaultInterval: time.Minute,
	MaxBatch:        50,
	CanExpandAlerts: true,
	Transform:       Transform,
}
