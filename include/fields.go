// Package include registers defenderbeat's fields (generated into fields.yml by
// `go tool mage update` from libbeat's ECS fields, _meta/fields.common.yml and every
// module/<dataset>/_meta/fields.yml) so that templates and data views carry every field.
package include

import (
	_ "embed"

	"github.com/elastic/beats/v7/libbeat/asset"
)

//go:embed fields.yml
var fieldsYML []byte

// BeatName keys the asset: libbeat looks the fields up under the beat's own name.
const BeatName = "defenderbeat"

// FieldsYML is the complete fields definition, for tools and tests.
func FieldsYML() []byte { return fieldsYML }

func init() {
	if err := asset.SetFields(BeatName, "fields.yml", asset.BeatFieldsPri, func() string {
		encoded, err := asset.EncodeData(string(fieldsYML))
		if err != nil {
			panic(err) // zlib into memory cannot fail short of a programming error
		}
		return encoded
	}); err != nil {
		panic(err)
	}
}
