package jsonlines

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes, plain or gzipped, and checks the reader's promises: it
// terminates, never returns a line over the limit or a blank line, and only ends with known
// errors.
func FuzzReader(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n{\"b\":2}"), false, 16)
	f.Add([]byte("\r\n\n{}\r\n"), true, 4)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, false, 1)
	f.Add([]byte("0123456789012345678901234567890123456789\n{}\n"), true, 8)
	f.Fuzz(func(t *testing.T, data []byte, compress bool, maxLine int) {
		if maxLine <= 0 || maxLine > 1<<16 {
			maxLine = 64
		}
		if compress {
			data = gzipped(t, string(data))
		}
		r, err := NewReader(bytes.NewReader(data), Options{MaxLineBytes: maxLine, MaxDecompressedBytes: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("NewReader: unexpected error %v", err)
			}
			return
		}
		for i := 0; ; i++ {
			if i > len(data)+1 && !r.Gzipped() {
				t.Fatalf("more lines than bytes: %d", i)
			}
			line, err := r.Next()
			var tl *LineTooLongError
			switch {
			case errors.As(err, &tl):
				if tl.Bytes <= int64(maxLine) {
					t.Fatalf("too-long line of %d bytes with limit %d", tl.Bytes, maxLine)
				}
				continue
			case errors.Is(err, io.EOF):
				if compress && r.DecompressedBytes() == 0 && len(data) == 0 {
					t.Fatal("EOF on nothing")
				}
				return
			case err != nil:
				if compress {
					t.Fatalf("a complete gzip stream failed: %v", err)
				}
				return
			}
			if len(line) > maxLine || len(bytes.TrimSpace(line)) == 0 {
				t.Fatalf("bad line %q (limit %d)", line, maxLine)
			}
		}
	})
}
