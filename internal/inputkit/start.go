package inputkit

import (
	"reflect"

	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	cursor "github.com/elastic/beats/v7/filebeat/input/v2/input-cursor"
	"github.com/elastic/beats/v7/libbeat/management/status"

	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// Start is what every Microsoft API input does first in Run: a client whose counters land in
// the input's own metrics registry (reporting FAILED when it cannot be built), and the cursor
// the registry holds, left zero when there is none or it cannot be read.
func Start(ctx v2.Context, o msapi.Options, api msapi.API, cur cursor.Cursor, stored any) (*msapi.Client, *msapi.Metrics, error) {
	metrics := msapi.NewMetrics(ctx.MetricsRegistry)
	client, err := msapi.NewClient(o, api, ctx.Logger, metrics)
	if err != nil {
		ctx.UpdateStatus(status.Failed, err.Error())
		return nil, nil, err
	}
	if !cur.IsNew() {
		if err := cur.Unpack(stored); err != nil {
			ctx.Logger.Warnw("Stored cursor is unreadable; starting as if there were none.", "error", err)
			// A half-filled cursor would be worse than none.
			v := reflect.ValueOf(stored).Elem()
			v.Set(reflect.Zero(v.Type()))
		}
	}
	return client, metrics, nil
}
