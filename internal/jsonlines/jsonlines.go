// Package jsonlines decodes a stream of JSON lines, gzip-compressed or not, one line at a time:
// memory is bounded by the line limit whatever the size of the stream, which is what lets the
// vulnerability input read multi-gigabyte export files.
package jsonlines

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// Defaults used when Options leave a limit at zero.
const (
	DefaultMaxLineBytes = 1 << 20
	readBufferBytes     = 64 << 10
)

// ErrEmpty is returned by NewReader for a stream without a single byte: blob storage sometimes
// answers 200 with an empty body, which must never pass for an empty export file.
var ErrEmpty = errors.New("empty body (0 bytes)")

// ErrTruncated means the compressed stream ended before its end marker or failed its checksum:
// the file is incomplete and none of it after the last returned line can be trusted.
var ErrTruncated = errors.New("gzip stream is truncated or corrupt")

// ErrTooLarge means the stream decompressed to more than MaxDecompressedBytes.
var ErrTooLarge = errors.New("decompressed stream exceeds its size limit")

// LineTooLongError reports a line beyond MaxLineBytes. It is not fatal: the reader has skipped
// the rest of the line and Next may be called again.
type LineTooLongError struct {
	Line   int64  // 1-based number among the non-blank lines
	Bytes  int64  // the line's full length
	Limit  int    // MaxLineBytes
	Prefix []byte // its first bytes, for the error document
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line %d is %d bytes, more than the limit of %d bytes", e.Line, e.Bytes, e.Limit)
}

// Options bound what one stream may cost.
type Options struct {
	// MaxLineBytes is the longest line accepted (without its newline); 0 means DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxDecompressedBytes stops the stream once it has produced more bytes; 0 means no limit
	// (memory stays bounded either way, this only guards against gzip bombs eating time).
	MaxDecompressedBytes int64
	// PrefixBytes is how much of an over-long line LineTooLongError keeps (default 1024).
	PrefixBytes int
}

// Reader returns the non-blank lines of a stream.
type Reader struct {
	opts    Options
	counter *countingReader
	gz      *gzip.Reader
	br      *bufio.Reader
	line    []byte
	lines   int64
	err     error
	gzipped bool
}

// NewReader starts decoding r. A stream that begins with the gzip magic is decompressed
// (concatenated gzip members are read as one stream); anything else is read as plain text.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.PrefixBytes <= 0 {
		opts.PrefixBytes = 1024
	}
	raw := bufio.NewReaderSize(r, readBufferBytes)
	magic, err := raw.Peek(2)
	if len(magic) == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, ErrEmpty
		}
		return nil, err
	}
	rd := &Reader{opts: opts}
	var src io.Reader = raw
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTruncated, err)
		}
		rd.gz, rd.gzipped, src = gz, true, gz
	}
	rd.counter = &countingReader{r: src, limit: opts.MaxDecompressedBytes}
	rd.br = bufio.NewReaderSize(rd.counter, readBufferBytes)
	return rd, nil
}

// Gzipped reports whether the stream was gzip-compressed.
func (r *Reader) Gzipped() bool { return r.gzipped }

// Lines is how many non-blank lines Next has returned or reported as too long.
func (r *Reader) Lines() int64 { return r.lines }

// DecompressedBytes is how many bytes the stream has produced so far.
func (r *Reader) DecompressedBytes() int64 { return r.counter.n }

// Next returns the next non-blank line without its line ending. The slice is only valid until
// the next call. At the clean end of the stream it returns io.EOF; a final line without a
// newline counts, but only once the stream has ended cleanly (a truncated stream's last partial
// line is never returned). A *LineTooLongError may be followed by more lines; any other error
// is final.
func (r *Reader) Next() ([]byte, error) {
	for r.err == nil {
		line, tooLong, err := r.readLine()
		if err != nil {
			// The stream is over; what was read before a clean end is still a line.
			r.err = r.translate(err)
			if !errors.Is(err, io.EOF) {
				return nil, r.err
			}
		}
		if tooLong != nil {
			r.lines++
			tooLong.Line = r.lines
			return nil, tooLong
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r.lines++
		return line, nil
	}
	return nil, r.err
}

// readLine reads up to the next '\n'. A line over the limit is consumed to its end and
// reported instead of returned, so one bad line costs at most the limit plus one buffer.
// err is io.EOF when the stream ended (the line, if any, had no newline).
func (r *Reader) readLine() (line []byte, tooLong *LineTooLongError, err error) {
	r.line = r.line[:0]
	var total int64
	for {
		chunk, err := r.br.ReadSlice('\n')
		total += int64(len(chunk))
		if tooLong == nil {
			r.line = append(r.line, chunk...)
			content := len(r.line)
			if err == nil {
				content-- // the newline
			}
			if content > r.opts.MaxLineBytes {
				tooLong = &LineTooLongError{Limit: r.opts.MaxLineBytes, Prefix: bytes.Clone(r.line[:min(len(r.line), r.opts.PrefixBytes)])}
				r.line = r.line[:0]
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil:
			if tooLong != nil {
				tooLong.Bytes = total - 1
				return nil, tooLong, nil
			}
			return r.line[:len(r.line)-1], nil, nil
		case tooLong != nil:
			tooLong.Bytes = total
			if errors.Is(err, io.EOF) {
				return nil, tooLong, err
			}
			return nil, nil, err
		default:
			return r.line, nil, err
		}
	}
}

// translate names a stream failure. Errors of the body itself (a cut connection, an idle
// timeout) pass through unchanged so callers can tell them apart.
func (r *Reader) translate(err error) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, ErrTooLarge):
		return err
	case r.gzipped && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.As(err, &corrupt)):
		return fmt.Errorf("%w after %d decompressed bytes: %v", ErrTruncated, r.counter.n, err)
	}
	return err
}

type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 && c.n >= c.limit {
		return 0, fmt.Errorf("%w (%d bytes)", ErrTooLarge, c.limit)
	}
	if c.limit > 0 && int64(len(p)) > c.limit-c.n+1 {
		p = p[:c.limit-c.n+1]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit > 0 && c.n > c.limit {
		return n, fmt.Errorf("%w (%d bytes)", ErrTooLarge, c.limit)
	}
	return n, err
}
