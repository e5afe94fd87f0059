package golden

import (
	"bytes"
	"fmt"
	"reflect"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/common"
	libbeatjson "github.com/elastic/beats/v7/libbeat/outputs/codec/json"
	"github.com/elastic/elastic-agent-libs/logp"
)

// NeedsNormalization reports how the output's encoding of ev differs from its encoding of what
// libbeat's event normalization makes of it, nil when it does not: an input may then turn the
// normalization (a deep copy of every document) off.
func NeedsNormalization(ev beat.Event) error {
	enc := libbeatjson.New("9.3.0", libbeatjson.Config{})
	raw, err := enc.Encode("index", &ev)
	if err != nil {
		return err
	}
	raw = bytes.Clone(raw)
	normalized := ev
	normalized.Fields = common.NewGenericEventConverter(false, logp.NewNopLogger()).Convert(ev.Fields)
	want, err := enc.Encode("index", &normalized)
	if err != nil {
		return err
	}
	var a, b any
	if err := decode(raw, &a); err != nil {
		return err
	}
	if err := decode(want, &b); err != nil {
		return err
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("the document needs libbeat's normalization:\n%s\nnormalized:\n%s", raw, want)
	}
	return nil
}
