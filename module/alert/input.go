package alert

import (
	"time"

	"github.com/defenderbeat/defenderbeat/internal/graphinput"
)

// InputType never changes: it is part of every stored cursor key.
const InputType = "defender-alert"

// Spec is the Graph collection this dataset reads.
var Spec = graphinput.Spec{
	InputType:       InputType,
	Dataset:         "alert",
	Path:            "/v1.0/security/alerts_v2",
	Permission:      "SecurityAlert.Read.All",
	DefaultInterval: 5 * time.Minute,
	MaxBatch:        1000,
	Transform:       Transform,
}
