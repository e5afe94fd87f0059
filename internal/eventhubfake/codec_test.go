package eventhubfake

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func sampleValues() []any {
	ts := time.UnixMilli(1700000000123).UTC()
	return []any{
		nil, true, false,
		uint8(0), uint8(255), uint16(0), uint16(65535),
		uint32(0), uint32(7), uint32(255), uint32(256), uint32(math.MaxUint32),
		uint64(0), uint64(9), uint64(256), uint64(math.MaxUint64),
		int8(-128), int8(127), int16(-32768), int16(32767),
		int32(0), int32(-1), int32(127), int32(-128), int32(128), int32(math.MinInt32), int32(math.MaxInt32),
		int64(0), int64(-100), int64(128), int64(math.MinInt64), int64(math.MaxInt64),
		float32(1.5), float32(math.Inf(-1)), float64(-2.25), math.MaxFloat64,
		Decimal32{1, 2, 3, 4}, Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, Decimal128{15: 1},
		Char('é'), Char('𝄞'),
		ts, time.UnixMilli(-5000).UTC(),
		UUID{0: 0xde, 15: 0xad},
		[]byte{}, []byte("short"), bytes.Repeat([]byte{0xab}, 300),
		"", "héllo", strings.Repeat("x", 300),
		Symbol(""), Symbol("amqp:link:stolen"), Symbol(strings.Repeat("s", 256)),
		List{}, List{uint32(1), "two", List{Symbol("three")}, nil},
		&Map{Entries: []MapEntry{{Symbol("k"), int64(1)}, {"s", List{true}}, {uint64(7), &Map{}}}},
		Array{}, Array{Symbol("a"), Symbol("b")}, Array{"x", "y"}, Array{int64(1), int64(-2)},
		Array{true, false}, Array{uint32(0), uint32(300)}, Array{ts, ts}, Array{List{uint8(1)}, List{}},
		Array{Described{uint64(0x1d), List{Symbol("c")}}, Described{uint64(0x1d), List{}}},
		Described{Descriptor: uint64(0x24), Value: List{}},
		Described{Descriptor: Symbol("com.example:x"), Value: "v"},
		Described{Descriptor: uint64(0x468C00000004), Value: "amqp.annotation.x-opt-offset > '-1'"},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, v := range sampleValues() {
		enc, err := Encode(nil, v)
		if err != nil {
			t.Fatalf("encode %T %v: %v", v, v, err)
		}
		got, n, err := Decode(enc)
		if err != nil {
			t.Fatalf("decode %T %v (% x): %v", v, v, enc, err)
		}
		if n != len(enc) {
			t.Fatalf("%T %v: consumed %d of %d bytes", v, v, n, len(enc))
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("round trip of %T: got %#v, want %#v", v, got, v)
		}
	}
}

// TestCodecCompactForms pins the compact constructors the spec prefers for small values.
func TestCodecCompactForms(t *testing.T) {
	cases := []struct {
		v    any
		want []byte
	}{
		{uint32(0), []byte{0x43}},
		{uint32(5), []byte{0x52, 5}},
		{uint32(300), []byte{0x70, 0, 0, 1, 0x2c}},
		{uint64(0), []byte{0x44}},
		{int32(-1), []byte{0x54, 0xff}},
		{int64(-1), []byte{0x55, 0xff}},
		{List{}, []byte{0x45}},
		{"ab", []byte{0xa1, 2, 'a', 'b'}},
		{Symbol("ab"), []byte{0xa3, 2, 'a', 'b'}},
		{true, []byte{0x41}},
		{Described{uint64(0x24), List{}}, []byte{0x00, 0x53, 0x24, 0x45}},
	}
	for _, c := range cases {
		got, err := Encode(nil, c.v)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("Encode(%#v) = % x, %v; want % x", c.v, got, err, c.want)
		}
	}
}

// TestCodecWideForms decodes encodings the fake itself never produces but peers may.
func TestCodecWideForms(t *testing.T) {
	cases := []struct {
		in   []byte
		want any
	}{
		{[]byte{0x56, 0x01}, true},
		{[]byte{0x70, 0, 0, 0, 5}, uint32(5)},
		{[]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 5}, uint64(5)},
		{[]byte{0x71, 0xff, 0xff, 0xff, 0xfe}, int32(-2)},
		{[]byte{0xb1, 0, 0, 0, 2, 'h', 'i'}, "hi"},
		{[]byte{0xb3, 0, 0, 0, 1, 'x'}, Symbol("x")},
		{[]byte{0xb0, 0, 0, 0, 1, 9}, []byte{9}},
		{[]byte{0xc0, 3, 2, 0x41, 0x40}, List{true, nil}},
		{[]byte{0xd0, 0, 0, 0, 6, 0, 0, 0, 1, 0x52, 3}, List{uint32(3)}},
		{[]byte{0xc1, 5, 2, 0xa3, 1, 'k', 0x41}, &Map{Entries: []MapEntry{{Symbol("k"), true}}}},
		{[]byte{0xe0, 6, 2, 0xa3, 1, 'a', 1, 'b'}, Array{Symbol("a"), Symbol("b")}},
		{[]byte{0xe0, 2, 3, 0x41}, Array{true, true, true}},
	}
	for _, c := range cases {
		got, n, err := Decode(c.in)
		if err != nil || n != len(c.in) || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Decode(% x) = %#v, %d, %v; want %#v", c.in, got, n, err, c.want)
		}
	}
}

func TestCodecRejectsMalformedInput(t *testing.T) {
	// Every strict prefix of a valid encoding is an error, never a panic or a partial value.
	for _, v := range sampleValues() {
		enc, _ := Encode(nil, v)
		for i := 0; i < len(enc); i++ {
			if _, _, err := Decode(enc[:i]); err == nil {
				t.Fatalf("prefix %d of % x (%T) decoded without error", i, enc, v)
			}
		}
	}
	deep := bytes.Repeat([]byte{0x00, 0x53, 0x01}, maxDecodeDepth+1)
	deep = append(deep, 0x40)
	cases := map[string][]byte{
		"list32 count larger than its bytes":       {0xd0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff},
		"list32 size larger than the buffer":       {0xd0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1},
		"binary length larger than the buffer":     {0xb0, 0xff, 0xff, 0xff, 0xff, 1},
		"map with an odd element count":            {0xc1, 2, 1, 0x40},
		"array of zero-width elements, huge count": {0xf0, 0, 0, 0, 5, 0x7f, 0xff, 0xff, 0xff, 0x40},
		"list whose size disagrees with elements":  {0xc0, 3, 1, 0x41, 0x41},
		"invalid UTF-8 string":                     {0xa1, 1, 0xff},
		"invalid boolean byte":                     {0x56, 2},
		"unknown constructor":                      {0x99},
		"nesting beyond the limit":                 deep,
		"char outside Unicode":                     {0x73, 0, 0x11, 0, 0},
	}
	for name, in := range cases {
		if v, _, err := Decode(in); err == nil {
			t.Errorf("%s: decoded %#v without error", name, v)
		}
	}
	if _, err := Encode(nil, Array{"a", Symbol("b")}); err == nil {
		t.Error("an array of mixed element types encoded without error")
	}
	if _, err := Encode(nil, struct{}{}); err == nil {
		t.Error("an unsupported Go type encoded without error")
	}
}

// TestCodecInteropWithGoAMQP checks the codec against the client's own: a management reply
// encoded by go-amqp decodes here with the types the SDK relies on, and the reverse.
func TestCodecInteropWithGoAMQP(t *testing.T) {
	created := time.UnixMilli(1700000000000).UTC()
	msg := &amqp.Message{
		ApplicationProperties: map[string]any{"status-code": int32(200)},
		Value:                 map[string]any{"partition_ids": []string{"0", "1"}, "created_at": created},
	}
	enc, err := msg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var sections []Described
	for rest := enc; len(rest) > 0; {
		v, n, err := Decode(rest)
		if err != nil {
			t.Fatal(err)
		}
		sections = append(sections, v.(Described))
		rest = rest[n:]
	}
	if len(sections) != 2 || sections[0].Descriptor != uint64(0x74) || sections[1].Descriptor != uint64(0x77) {
		t.Fatalf("sections: %#v", sections)
	}
	status, _ := sections[0].Value.(*Map).Get("status-code")
	if status != int32(200) {
		t.Fatalf("status-code decoded as %#v", status)
	}
	body := sections[1].Value.(*Map)
	ids, _ := body.Get("partition_ids")
	if !reflect.DeepEqual(ids, Array{"0", "1"}) {
		t.Fatalf("partition_ids decoded as %#v, want an array of strings", ids)
	}
	if at, _ := body.Get("created_at"); at != created {
		t.Fatalf("created_at decoded as %#v", at)
	}

	ours, err := Encode(nil, Described{uint64(0x77), &Map{Entries: []MapEntry{
		{"ids", Array{"a", "b"}}, {"n", int64(-3)}, {"when", created}, {"flag", true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var back amqp.Message
	if err := back.UnmarshalBinary(ours); err != nil {
		t.Fatal(err)
	}
	got, _ := back.Value.(map[string]any)
	if when, _ := got["when"].(time.Time); !when.Equal(created) {
		t.Fatalf("go-amqp decoded the timestamp as %#v", got["when"])
	}
	delete(got, "when") // go-amqp returns local time; the instant is what matters
	want := map[string]any{"ids": []string{"a", "b"}, "n": int64(-3), "flag": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("go-amqp decoded %#v, want %#v", back.Value, want)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	payload := []byte("message bytes")
	buf, err := appendFrame(nil, frameAMQP, 7, codeTransfer, List{uint32(3), uint32(9), []byte{1}, uint32(0), true, false, nil, nil}, payload)
	if err != nil {
		t.Fatal(err)
	}
	f, err := readFrame(bytes.NewReader(buf), ourMaxFrameSize, make([]byte, 8))
	if err != nil {
		t.Fatal(err)
	}
	if f.channel != 7 || f.code != codeTransfer || !bytes.Equal(f.payload, payload) || len(f.fields) != 6 {
		t.Fatalf("frame: %+v", f)
	}
	if h, _ := f.fields.uint(0); h != 3 || !f.fields.boolOr(4, false) || f.fields.boolOr(5, true) {
		t.Fatalf("fields: %#v", f.fields)
	}

	big := make([]byte, 16)
	binary.BigEndian.PutUint32(big, ourMaxFrameSize+1)
	big[4] = 2
	if _, err := readFrame(bytes.NewReader(big), ourMaxFrameSize, make([]byte, 8)); err == nil {
		t.Fatal("a frame above max-frame-size was accepted")
	}
	empty, err := readFrame(bytes.NewReader(emptyFrame), ourMaxFrameSize, make([]byte, 8))
	if err != nil || empty.fields != nil {
		t.Fatalf("keep-alive frame: %+v, %v", empty, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, v := range sampleValues() {
		enc, _ := Encode(nil, v)
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		v, _, err := Decode(in)
		if err != nil {
			return
		}
		enc, err := Encode(nil, v)
		if err != nil {
			t.Fatalf("decoded %#v does not re-encode: %v", v, err)
		}
		// Compare encodings, not values: NaN != NaN, and compact and wide forms decode alike.
		again, _, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decoding %#v: %v", v, err)
		}
		if enc2, err := Encode(nil, again); err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%#v re-encoded as % x, then % x", v, enc, enc2)
		}
	})
}
