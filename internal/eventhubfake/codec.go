package eventhubfake

// AMQP 1.0 type system (OASIS AMQP 1.0, part 1 "Types"). Values map to Go as follows:
// null=nil, boolean=bool, ubyte..ulong=uint8..uint64, byte..long=int8..int64, float=float32,
// double=float64, decimal32/64/128=Decimal32/64/128, char=Char, timestamp=time.Time, uuid=UUID,
// binary=[]byte, string=string, symbol=Symbol, list=List, map=*Map, array=Array, described=Described.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

type (
	// Symbol is an AMQP symbol: ASCII, used for names such as conditions and annotation keys.
	Symbol string
	// Char is a single Unicode code point (AMQP char), distinct from int32.
	Char rune
	// UUID is an AMQP uuid in network byte order.
	UUID [16]byte
	// Decimal32 holds the raw IEEE 754 decimal32 bits; the fake never does arithmetic on it.
	Decimal32 [4]byte
	// Decimal64 holds the raw IEEE 754 decimal64 bits.
	Decimal64 [8]byte
	// Decimal128 holds the raw IEEE 754 decimal128 bits.
	Decimal128 [16]byte
	// List is an AMQP list of heterogeneous values.
	List []any
	// Array is an AMQP array: every element has the same Go type (and so the same constructor).
	Array []any
)

// Described is a value with a descriptor (usually a uint64 code or a Symbol).
type Described struct {
	Descriptor any
	Value      any
}

// Map is an AMQP map that keeps the wire order of its entries (AMQP keys may be of any type,
// and the order matters for byte-exact round trips).
type Map struct {
	Entries []MapEntry
}

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key, Value any
}

// Get returns the value for a key; a string key also matches a Symbol key and vice versa,
// because peers differ in which of the two they use for the same names.
func (m *Map) Get(key any) (any, bool) {
	if m == nil {
		return nil, false
	}
	for _, e := range m.Entries {
		if keyEqual(e.Key, key) {
			return e.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of an existing key or appends a new entry.
func (m *Map) Set(key, value any) {
	for i := range m.Entries {
		if keyEqual(m.Entries[i].Key, key) {
			m.Entries[i].Value = value
			return
		}
	}
	m.Entries = append(m.Entries, MapEntry{Key: key, Value: value})
}

func keyEqual(a, b any) bool {
	if as, ok := stringish(a); ok {
		bs, ok := stringish(b)
		return ok && as == bs
	}
	return a == b
}

func stringish(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case Symbol:
		return string(s), true
	}
	return "", false
}

// Constructor codes (part 1, section 1.6).
const (
	tDescribed  = 0x00
	tNull       = 0x40
	tTrue       = 0x41
	tFalse      = 0x42
	tUint0      = 0x43
	tUlong0     = 0x44
	tList0      = 0x45
	tUbyte      = 0x50
	tByte       = 0x51
	tSmallUint  = 0x52
	tSmallUlong = 0x53
	tSmallInt   = 0x54
	tSmallLong  = 0x55
	tBool       = 0x56
	tUshort     = 0x60
	tShort      = 0x61
	tUint       = 0x70
	tInt        = 0x71
	tFloat      = 0x72
	tChar       = 0x73
	tDecimal32  = 0x74
	tUlong      = 0x80
	tLong       = 0x81
	tDouble     = 0x82
	tTimestamp  = 0x83
	tDecimal64  = 0x84
	tDecimal128 = 0x94
	tUUID       = 0x98
	tVbin8      = 0xa0
	tStr8       = 0xa1
	tSym8       = 0xa3
	tVbin32     = 0xb0
	tStr32      = 0xb1
	tSym32      = 0xb3
	tList8      = 0xc0
	tMap8       = 0xc1
	tList32     = 0xd0
	tMap32      = 0xd1
	tArray8     = 0xe0
	tArray32    = 0xf0
)

// Encode appends the AMQP encoding of v to buf, choosing the most compact constructor.
func Encode(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, tNull), nil
	case bool:
		if x {
			return append(buf, tTrue), nil
		}
		return append(buf, tFalse), nil
	case uint32:
		switch {
		case x == 0:
			return append(buf, tUint0), nil
		case x < 256:
			return append(buf, tSmallUint, byte(x)), nil
		}
	case uint64:
		switch {
		case x == 0:
			return append(buf, tUlong0), nil
		case x < 256:
			return append(buf, tSmallUlong, byte(x)), nil
		}
	case int32:
		if x >= math.MinInt8 && x <= math.MaxInt8 {
			return append(buf, tSmallInt, byte(int8(x))), nil
		}
	case int64:
		if x >= math.MinInt8 && x <= math.MaxInt8 {
			return append(buf, tSmallLong, byte(int8(x))), nil
		}
	case []byte:
		if len(x) < 256 {
			return append(append(buf, tVbin8, byte(len(x))), x...), nil
		}
	case string:
		if len(x) < 256 {
			return append(append(buf, tStr8, byte(len(x))), x...), nil
		}
	case Symbol:
		if len(x) < 256 {
			return append(append(buf, tSym8, byte(len(x))), x...), nil
		}
	case List:
		if len(x) == 0 {
			return append(buf, tList0), nil
		}
	case Described:
		var err error
		buf = append(buf, tDescribed)
		if buf, err = Encode(buf, x.Descriptor); err != nil {
			return buf, err
		}
		return Encode(buf, x.Value)
	case *Described:
		return Encode(buf, *x)
	}
	code, err := wideConstructor(v)
	if err != nil {
		return buf, err
	}
	return encodeBody(append(buf, code), code, v)
}

// wideConstructor is the constructor that can hold any value of v's type; arrays need it because
// all their elements share one constructor.
func wideConstructor(v any) (byte, error) {
	switch v.(type) {
	case nil:
		return tNull, nil
	case bool:
		return tBool, nil
	case uint8:
		return tUbyte, nil
	case uint16:
		return tUshort, nil
	case uint32:
		return tUint, nil
	case uint64:
		return tUlong, nil
	case int8:
		return tByte, nil
	case int16:
		return tShort, nil
	case int32:
		return tInt, nil
	case int64:
		return tLong, nil
	case float32:
		return tFloat, nil
	case float64:
		return tDouble, nil
	case Decimal32:
		return tDecimal32, nil
	case Decimal64:
		return tDecimal64, nil
	case Decimal128:
		return tDecimal128, nil
	case Char:
		return tChar, nil
	case time.Time:
		return tTimestamp, nil
	case UUID:
		return tUUID, nil
	case []byte:
		return tVbin32, nil
	case string:
		return tStr32, nil
	case Symbol:
		return tSym32, nil
	case List:
		return tList32, nil
	case *Map:
		return tMap32, nil
	case Array:
		return tArray32, nil
	}
	return 0, fmt.Errorf("amqp: cannot encode %T", v)
}

func encodeBody(buf []byte, code byte, v any) ([]byte, error) {
	be := binary.BigEndian
	switch code {
	case tNull:
		return buf, nil
	case tBool:
		if v.(bool) {
			return append(buf, 1), nil
		}
		return append(buf, 0), nil
	case tUbyte:
		return append(buf, v.(uint8)), nil
	case tUshort:
		return be.AppendUint16(buf, v.(uint16)), nil
	case tUint:
		return be.AppendUint32(buf, v.(uint32)), nil
	case tUlong:
		return be.AppendUint64(buf, v.(uint64)), nil
	case tByte:
		return append(buf, byte(v.(int8))), nil
	case tShort:
		return be.AppendUint16(buf, uint16(v.(int16))), nil
	case tInt:
		return be.AppendUint32(buf, uint32(v.(int32))), nil
	case tLong:
		return be.AppendUint64(buf, uint64(v.(int64))), nil
	case tFloat:
		return be.AppendUint32(buf, math.Float32bits(v.(float32))), nil
	case tDouble:
		return be.AppendUint64(buf, math.Float64bits(v.(float64))), nil
	case tDecimal32:
		d := v.(Decimal32)
		return append(buf, d[:]...), nil
	case tDecimal64:
		d := v.(Decimal64)
		return append(buf, d[:]...), nil
	case tDecimal128:
		d := v.(Decimal128)
		return append(buf, d[:]...), nil
	case tChar:
		return be.AppendUint32(buf, uint32(v.(Char))), nil
	case tTimestamp:
		return be.AppendUint64(buf, uint64(v.(time.Time).UnixMilli())), nil
	case tUUID:
		u := v.(UUID)
		return append(buf, u[:]...), nil
	case tVbin32:
		b := v.([]byte)
		return append(be.AppendUint32(buf, uint32(len(b))), b...), nil
	case tStr32:
		s := v.(string)
		return append(be.AppendUint32(buf, uint32(len(s))), s...), nil
	case tSym32:
		s := v.(Symbol)
		return append(be.AppendUint32(buf, uint32(len(s))), s...), nil
	case tList32:
		items := v.(List)
		return encodeCompound(buf, len(items), func(b []byte) ([]byte, error) {
			var err error
			for _, it := range items {
				if b, err = Encode(b, it); err != nil {
					return b, err
				}
			}
			return b, nil
		})
	case tMap32:
		m := v.(*Map)
		return encodeCompound(buf, 2*len(m.Entries), func(b []byte) ([]byte, error) {
			var err error
			for _, e := range m.Entries {
				if b, err = Encode(b, e.Key); err != nil {
					return b, err
				}
				if b, err = Encode(b, e.Value); err != nil {
					return b, err
				}
			}
			return b, nil
		})
	case tArray32:
		return encodeArray(buf, v.(Array))
	}
	return buf, fmt.Errorf("amqp: no body encoding for constructor 0x%02x", code)
}

// encodeCompound writes size and count (32-bit forms) around the elements written by fill.
func encodeCompound(buf []byte, count int, fill func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[start+4:], uint32(count))
	buf, err := fill(buf)
	if err != nil {
		return buf, err
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
	return buf, nil
}

func encodeArray(buf []byte, items Array) ([]byte, error) {
	return encodeCompound(buf, len(items), func(b []byte) ([]byte, error) {
		if len(items) == 0 {
			// An empty array still needs an element constructor; symbol is what capability lists use.
			return append(b, tSym32), nil
		}
		var err error
		first := items[0]
		if d, ok := first.(Described); ok {
			b = append(b, tDescribed)
			if b, err = Encode(b, d.Descriptor); err != nil {
				return b, err
			}
			first = d.Value
		}
		code, err := wideConstructor(first)
		if err != nil {
			return b, err
		}
		b = append(b, code)
		for _, it := range items {
			if d, ok := it.(Described); ok {
				it = d.Value
			}
			if c, err := wideConstructor(it); err != nil || c != code {
				return b, fmt.Errorf("amqp: array elements of mixed types %T and %T", first, it)
			}
			if b, err = encodeBody(b, code, it); err != nil {
				return b, err
			}
		}
		return b, nil
	})
}

// Decode limits: the fake reads frames from untrusted peers, so nesting and element counts are
// bounded by the bytes actually present rather than by the (attacker-chosen) length fields.
const (
	maxDecodeDepth = 32
	// maxZeroWidthElems bounds arrays whose elements occupy no bytes (null, true, uint0...).
	maxZeroWidthElems = 1 << 16
)

var errShort = errors.New("amqp: buffer too short")

type decoder struct {
	b     []byte
	pos   int
	depth int
}

// Decode reads one value from b and returns it with the number of bytes consumed.
func Decode(b []byte) (any, int, error) {
	d := decoder{b: b}
	v, err := d.value()
	return v, d.pos, err
}

func (d *decoder) remaining() int { return len(d.b) - d.pos }

func (d *decoder) take(n int) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, errShort
	}
	s := d.b[d.pos : d.pos+n]
	d.pos += n
	return s, nil
}

func (d *decoder) byte1() (byte, error) {
	s, err := d.take(1)
	if err != nil {
		return 0, err
	}
	return s[0], nil
}

func (d *decoder) value() (any, error) {
	code, err := d.byte1()
	if err != nil {
		return nil, err
	}
	if code != tDescribed {
		return d.body(code)
	}
	if d.depth++; d.depth > maxDecodeDepth {
		return nil, errors.New("amqp: nesting too deep")
	}
	defer func() { d.depth-- }()
	desc, err := d.value()
	if err != nil {
		return nil, err
	}
	val, err := d.value()
	if err != nil {
		return nil, err
	}
	return Described{Descriptor: desc, Value: val}, nil
}

func (d *decoder) body(code byte) (any, error) {
	be := binary.BigEndian
	fixed := func(n int) ([]byte, error) { return d.take(n) }
	switch code {
	case tNull:
		return nil, nil
	case tTrue:
		return true, nil
	case tFalse:
		return false, nil
	case tUint0:
		return uint32(0), nil
	case tUlong0:
		return uint64(0), nil
	case tList0:
		return List{}, nil
	case tBool:
		b, err := d.byte1()
		if err != nil {
			return nil, err
		}
		if b > 1 {
			return nil, fmt.Errorf("amqp: invalid boolean byte 0x%02x", b)
		}
		return b == 1, nil
	case tUbyte:
		b, err := d.byte1()
		return b, err
	case tByte:
		b, err := d.byte1()
		return int8(b), err
	case tSmallUint:
		b, err := d.byte1()
		return uint32(b), err
	case tSmallUlong:
		b, err := d.byte1()
		return uint64(b), err
	case tSmallInt:
		b, err := d.byte1()
		return int32(int8(b)), err
	case tSmallLong:
		b, err := d.byte1()
		return int64(int8(b)), err
	case tUshort, tShort:
		s, err := fixed(2)
		if err != nil {
			return nil, err
		}
		if code == tUshort {
			return be.Uint16(s), nil
		}
		return int16(be.Uint16(s)), nil
	case tUint, tInt, tFloat, tChar, tDecimal32:
		s, err := fixed(4)
		if err != nil {
			return nil, err
		}
		u := be.Uint32(s)
		switch code {
		case tUint:
			return u, nil
		case tInt:
			return int32(u), nil
		case tFloat:
			return math.Float32frombits(u), nil
		case tChar:
			if !utf8.ValidRune(rune(u)) {
				return nil, fmt.Errorf("amqp: invalid char U+%X", u)
			}
			return Char(u), nil
		default:
			return Decimal32(s), nil
		}
	case tUlong, tLong, tDouble, tTimestamp, tDecimal64:
		s, err := fixed(8)
		if err != nil {
			return nil, err
		}
		u := be.Uint64(s)
		switch code {
		case tUlong:
			return u, nil
		case tLong:
			return int64(u), nil
		case tDouble:
			return math.Float64frombits(u), nil
		case tTimestamp:
			return time.UnixMilli(int64(u)).UTC(), nil
		default:
			return Decimal64(s), nil
		}
	case tDecimal128, tUUID:
		s, err := fixed(16)
		if err != nil {
			return nil, err
		}
		if code == tUUID {
			return UUID(s), nil
		}
		return Decimal128(s), nil
	case tVbin8, tStr8, tSym8, tVbin32, tStr32, tSym32:
		n, err := d.length(code == tVbin8 || code == tStr8 || code == tSym8)
		if err != nil {
			return nil, err
		}
		s, err := d.take(n)
		if err != nil {
			return nil, err
		}
		switch code {
		case tVbin8, tVbin32:
			b := make([]byte, len(s))
			copy(b, s)
			return b, nil
		case tStr8, tStr32:
			if !utf8.Valid(s) {
				return nil, errors.New("amqp: string is not valid UTF-8")
			}
			return string(s), nil
		default:
			return Symbol(s), nil
		}
	case tList8, tList32, tMap8, tMap32, tArray8, tArray32:
		return d.compound(code)
	}
	return nil, fmt.Errorf("amqp: unknown constructor 0x%02x", code)
}

// length reads a 1- or 4-byte length prefix and checks it against the bytes present.
func (d *decoder) length(small bool) (int, error) {
	if small {
		b, err := d.byte1()
		if err != nil {
			return 0, err
		}
		return int(b), nil
	}
	s, err := d.take(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(s)
	if uint64(n) > uint64(d.remaining()) {
		return 0, errShort
	}
	return int(n), nil
}

// count reads a compound's element count (one byte in the 8-bit encodings, four otherwise).
func (d *decoder) count(small bool) (int, error) {
	if small {
		b, err := d.byte1()
		return int(b), err
	}
	s, err := d.take(4)
	if err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(s)
	if uint64(n) > math.MaxInt32 {
		return 0, errors.New("amqp: element count too large")
	}
	return int(n), nil
}

func (d *decoder) compound(code byte) (any, error) {
	if d.depth++; d.depth > maxDecodeDepth {
		return nil, errors.New("amqp: nesting too deep")
	}
	defer func() { d.depth-- }()
	small := code == tList8 || code == tMap8 || code == tArray8
	size, err := d.length(small)
	if err != nil {
		return nil, err
	}
	if size > d.remaining() {
		return nil, errShort
	}
	// Decode the elements from a window of exactly size bytes so that a wrong count cannot read
	// into whatever follows.
	inner := decoder{b: d.b[:d.pos+size], pos: d.pos, depth: d.depth}
	// A count is not a byte length: an array of nulls holds more elements than bytes. Each kind
	// below bounds its count against what is present.
	count, err := inner.count(small)
	if err != nil {
		return nil, err
	}
	var out any
	switch code {
	case tList8, tList32:
		if count > inner.remaining() {
			return nil, errShort
		}
		l := make(List, 0, count)
		for i := 0; i < count; i++ {
			v, err := inner.value()
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		out = l
	case tMap8, tMap32:
		if count%2 != 0 {
			return nil, errors.New("amqp: map with odd element count")
		}
		if count > inner.remaining() {
			return nil, errShort
		}
		m := &Map{}
		if count > 0 {
			m.Entries = make([]MapEntry, 0, count/2)
		}
		for i := 0; i < count; i += 2 {
			k, err := inner.value()
			if err != nil {
				return nil, err
			}
			v, err := inner.value()
			if err != nil {
				return nil, err
			}
			m.Entries = append(m.Entries, MapEntry{Key: k, Value: v})
		}
		out = m
	default:
		a, err := inner.array(count)
		if err != nil {
			return nil, err
		}
		out = a
	}
	if inner.pos != d.pos+size {
		return nil, fmt.Errorf("amqp: compound size %d does not match its %d bytes of elements", size, inner.pos-d.pos)
	}
	d.pos = inner.pos
	return out, nil
}

func (d *decoder) array(count int) (Array, error) {
	code, err := d.byte1()
	if err != nil {
		return nil, err
	}
	var descriptor any
	described := code == tDescribed
	if described {
		if descriptor, err = d.value(); err != nil {
			return nil, err
		}
		if code, err = d.byte1(); err != nil {
			return nil, err
		}
	}
	switch code {
	case tNull, tTrue, tFalse, tUint0, tUlong0, tList0:
		if count > maxZeroWidthElems {
			return nil, errors.New("amqp: array too long")
		}
	default:
		if count > d.remaining() {
			return nil, errShort
		}
	}
	a := make(Array, 0, count)
	for i := 0; i < count; i++ {
		v, err := d.body(code)
		if err != nil {
			return nil, err
		}
		if described {
			v = Described{Descriptor: descriptor, Value: v}
		}
		a = append(a, v)
	}
	return a, nil
}
