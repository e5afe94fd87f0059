package eventhubfake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types and performative descriptors (part 2 "Transport", part 5 "Security").
const (
	frameAMQP = 0
	frameSASL = 1

	codeOpen        = 0x10
	codeBegin       = 0x11
	codeAttach      = 0x12
	codeFlow        = 0x13
	codeTransfer    = 0x14
	codeDisposition = 0x15
	codeDetach      = 0x16
	codeEnd         = 0x17
	codeClose       = 0x18
	codeError       = 0x1d
	codeReceived    = 0x23
	codeAccepted    = 0x24
	codeRejected    = 0x25
	codeReleased    = 0x26
	codeModified    = 0x27
	codeSource      = 0x28
	codeTarget      = 0x29

	codeSASLMechanisms = 0x40
	codeSASLInit       = 0x41
	codeSASLOutcome    = 0x44

	// minMaxFrameSize is the smallest max-frame-size a peer may announce (part 2, 2.7.1).
	minMaxFrameSize = 512
)

var (
	headerAMQP = []byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	headerSASL = []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// frame is one decoded frame: a performative (nil for an empty keep-alive frame) plus, for
// transfers, the payload that follows it.
type frame struct {
	typ     byte
	channel uint16
	code    uint64
	fields  fields
	payload []byte
}

// fields are a performative's list fields; absent trailing fields read as nil (the default).
type fields List

func (f fields) get(i int) any {
	if i < len(f) {
		return f[i]
	}
	return nil
}

func (f fields) uint(i int) (uint64, bool) {
	switch v := f.get(i).(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	}
	return 0, false
}

func (f fields) uintOr(i int, def uint64) uint64 {
	if v, ok := f.uint(i); ok {
		return v
	}
	return def
}

func (f fields) boolOr(i int, def bool) bool {
	if v, ok := f.get(i).(bool); ok {
		return v
	}
	return def
}

func (f fields) str(i int) string {
	s, _ := stringish(f.get(i))
	return s
}

func (f fields) bytes(i int) []byte {
	b, _ := f.get(i).([]byte)
	return b
}

// readFrame reads one frame, refusing frames above maxSize so a peer cannot make the fake
// allocate without bound.
func readFrame(r io.Reader, maxSize uint32, hdr []byte) (*frame, error) {
	if _, err := io.ReadFull(r, hdr[:8]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[0:4])
	doff := int(hdr[4]) * 4
	if size < 8 || size > maxSize || doff < 8 || uint32(doff) > size {
		return nil, fmt.Errorf("amqp: bad frame header size=%d doff=%d", size, doff)
	}
	buf := make([]byte, size-8)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	f := &frame{typ: hdr[5], channel: binary.BigEndian.Uint16(hdr[6:8])}
	body := buf[doff-8:]
	if len(body) == 0 {
		return f, nil
	}
	v, n, err := Decode(body)
	if err != nil {
		return nil, fmt.Errorf("amqp: decoding performative: %w", err)
	}
	d, ok := v.(Described)
	if !ok {
		return nil, errors.New("amqp: frame body is not a described performative")
	}
	code, ok := d.Descriptor.(uint64)
	if !ok {
		return nil, fmt.Errorf("amqp: unsupported performative descriptor %v", d.Descriptor)
	}
	list, ok := d.Value.(List)
	if !ok {
		return nil, fmt.Errorf("amqp: performative 0x%02x is not a list", code)
	}
	f.code, f.fields, f.payload = code, fields(list), body[n:]
	return f, nil
}

// appendFrame appends a complete frame (header, performative with trailing nulls trimmed,
// payload) to buf.
func appendFrame(buf []byte, typ byte, channel uint16, code uint64, list List, payload []byte) ([]byte, error) {
	for len(list) > 0 && list[len(list)-1] == nil {
		list = list[:len(list)-1]
	}
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	buf, err := Encode(buf, Described{Descriptor: code, Value: list})
	if err != nil {
		return buf[:start], err
	}
	buf = append(buf, payload...)
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start))
	return buf, nil
}

// emptyFrame is the keep-alive frame: a header with no body.
var emptyFrame = []byte{0, 0, 0, 8, 2, frameAMQP, 0, 0}

// amqpError builds the error composite for detach/end/close.
func amqpError(condition, description string) Described {
	return Described{Descriptor: uint64(codeError), Value: List{Symbol(condition), description}}
}

// describedCode returns the numeric descriptor of a described value, or false.
func describedCode(v any) (uint64, List, bool) {
	d, ok := v.(Described)
	if !ok {
		return 0, nil, false
	}
	code, ok := d.Descriptor.(uint64)
	if !ok {
		return 0, nil, false
	}
	l, _ := d.Value.(List)
	return code, l, true
}
