package event

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxLineBytes bounds one line of a blob: a Streaming API record is about a kilobyte, and an
// Event Hub message, which holds many, at most one megabyte. A longer line is no record; it
// becomes an error document holding its first maxLineBytes.
const maxLineBytes = 4 << 20

// lineReaderBuffer is how much of a blob is read ahead; a line longer than it is gathered in
// a buffer of its own, up to maxLineBytes.
const lineReaderBuffer = 64 << 10

// errPartialLine ends a read whose last bytes carry no line break yet: Defender has not
// finished appending that line (or appended it in two writes), so it waits for the next poll.
var errPartialLine = errors.New("the blob ends inside a line")

// line is one line of a blob.
type line struct {
	// data is the line without its line break (LF or CR LF); only valid until the next call.
	data []byte
	// end is the blob offset just past the line break: where reading resumes after this line.
	end int64
	// length is the line's size in bytes without the line break; above len(data) when the line
	// was longer than the reader keeps.
	length int64
}

// lineReader splits what a blob holds from an offset into lines, in bounded memory.
type lineReader struct {
	br     *bufio.Reader
	offset int64 // blob offset of the next byte br returns
	max    int
	long   []byte // gathers a line that does not fit br's buffer
}

func newLineReader(r io.Reader, offset int64, maxLine int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, lineReaderBuffer), offset: offset, max: maxLine}
}

// next returns the next complete line. At the end of the data it returns io.EOF, or
// errPartialLine with what the unfinished line holds so far (its end is where it would end
// if the data ended there).
func (lr *lineReader) next() (line, error) {
	start := lr.offset
	chunk, err := lr.br.ReadSlice('\n')
	lr.offset += int64(len(chunk))
	if err == nil {
		return lr.finish(chunk, start), nil
	}
	if len(chunk) == 0 && err == io.EOF {
		return line{end: start}, io.EOF
	}
	// The line is longer than the buffer, or unfinished: gather it, keeping at most max bytes.
	lr.long = append(lr.long[:0], chunk[:min(len(chunk), lr.max+2)]...)
	for err == bufio.ErrBufferFull {
		chunk, err = lr.br.ReadSlice('\n')
		lr.offset += int64(len(chunk))
		if room := lr.max + 2 - len(lr.long); room > 0 {
			lr.long = append(lr.long, chunk[:min(len(chunk), room)]...)
		}
	}
	switch err {
	case nil:
		return lr.finish(lr.long, start), nil
	case io.EOF:
		l := lr.finish(lr.long, start)
		return l, errPartialLine
	default:
		return line{end: start}, err
	}
}

// finish makes a line of the bytes kept of it (a line break included when it had one), where
// the line began at start and the reader now stands past it.
func (lr *lineReader) finish(kept []byte, start int64) line {
	length := lr.offset - start
	if bytes.HasSuffix(kept, []byte("\n")) {
		kept = kept[:len(kept)-1]
		length--
		if bytes.HasSuffix(kept, []byte("\r")) {
			kept = kept[:len(kept)-1]
			length--
		}
	}
	if len(kept) > lr.max {
		kept = kept[:lr.max]
	}
	return line{data: kept, end: lr.offset, length: length}
}
