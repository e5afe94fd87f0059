package jsonlines

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func gzipped(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readAll returns every line and every over-long line (as "TOOLONG:<n>"), and the final error.
func readAll(t testing.TB, data []byte, opts Options) ([]string, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), opts)
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		line, err := r.Next()
		var tl *LineTooLongError
		switch {
		case errors.As(err, &tl):
			out = append(out, fmt.Sprintf("TOOLONG:%d:%d", tl.Line, tl.Bytes))
			continue
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return out, err
		}
		out = append(out, string(line))
	}
}

func TestLines(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []string
	}{
		{"newline terminated", "{\"a\":1}\n{\"a\":2}\n", []string{`{"a":1}`, `{"a":2}`}},
		{"last line without newline", "{\"a\":1}\n{\"a\":2}", []string{`{"a":1}`, `{"a":2}`}},
		{"crlf and blank lines", "\r\n{\"a\":1}\r\n\n  \n{\"a\":2}\r\n\n", []string{`{"a":1}`, `{"a":2}`}},
		{"only blank", "\n\n", nil},
	}
	for _, c := range cases {
		for _, gz := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/gzip=%v", c.name, gz), func(t *testing.T) {
				data := []byte(c.in)
				if gz {
					data = gzipped(t, c.in)
				}
				got, err := readAll(t, data, Options{})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Fatalf("got %q, want %q", got, c.want)
				}
			})
		}
	}
}

func TestEmptyBodyIsAnError(t *testing.T) {
	_, err := NewReader(bytes.NewReader(nil), Options{})
	if !errors.Is(err, ErrEmpty) {
		t.Fatalf("got %v, want ErrEmpty", err)
	}
	// An empty but complete gzip stream is a legitimate empty file.
	got, err := readAll(t, gzipped(t, ""), Options{})
	if err != nil || len(got) != 0 {
		t.Fatalf("empty gzip member: %q, %v", got, err)
	}
}

func TestTruncatedGzipNeverYieldsThePartialLine(t *testing.T) {
	var sb strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&sb, "{\"row\":%d,\"pad\":\"%s\"}\n", i, strings.Repeat("x", i%97))
	}
	full := gzipped(t, sb.String())
	for _, cut := range []int{len(full) - 1, len(full) - 8, len(full) / 2, 11, 5} {
		got, err := readAll(t, full[:cut], Options{})
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: got error %v, want ErrTruncated", cut, len(full), err)
		}
		for i, line := range got {
			if want := fmt.Sprintf("{\"row\":%d,\"pad\":\"%s\"}", i, strings.Repeat("x", i%97)); line != want {
				t.Fatalf("cut at %d: line %d is %q, want %q", cut, i, line, want)
			}
		}
	}
	// A corrupted trailer (checksum) is caught as well.
	bad := append([]byte(nil), full...)
	bad[len(bad)-6] ^= 0xff
	if _, err := readAll(t, bad, Options{}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("bad checksum: %v", err)
	}
}

func TestLineTooLongIsSkippedAndReadingContinues(t *testing.T) {
	long := strings.Repeat("y", 300_000)
	in := "{\"a\":1}\n" + long + "\n{\"a\":2}\n" + long
	for _, gz := range []bool{false, true} {
		data := []byte(in)
		if gz {
			data = gzipped(t, in)
		}
		got, err := readAll(t, data, Options{MaxLineBytes: 100_000})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{`{"a":1}`, "TOOLONG:2:300000", `{"a":2}`, "TOOLONG:4:300000"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("gzip=%v: got %q, want %q", gz, got, want)
		}
	}
	// Exactly at the limit is accepted.
	got, err := readAll(t, []byte(strings.Repeat("z", 1000)+"\n"), Options{MaxLineBytes: 1000})
	if err != nil || len(got) != 1 || len(got[0]) != 1000 {
		t.Fatalf("line at the limit: %d lines, %v", len(got), err)
	}
	r, _ := NewReader(strings.NewReader(long+"\n"), Options{MaxLineBytes: 10, PrefixBytes: 16})
	_, err = r.Next()
	var tl *LineTooLongError
	if !errors.As(err, &tl) || string(tl.Prefix) != long[:16] {
		t.Fatalf("prefix: %v", err)
	}
}

func TestDecompressedLimit(t *testing.T) {
	in := strings.Repeat("{\"a\":1}\n", 10_000)
	_, err := readAll(t, gzipped(t, in), Options{MaxDecompressedBytes: 1000})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	got, err := readAll(t, gzipped(t, in), Options{MaxDecompressedBytes: int64(len(in))})
	if err != nil || len(got) != 10_000 {
		t.Fatalf("at the limit: %d lines, %v", len(got), err)
	}
}

func TestConcatenatedGzipMembers(t *testing.T) {
	data := append(gzipped(t, "{\"a\":1}\n"), gzipped(t, "{\"a\":2}\n")...)
	got, err := readAll(t, data, Options{})
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{`{"a":1}`, `{"a":2}`}) {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := readAll(t, append(gzipped(t, "{}\n"), "garbage"...), Options{}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("trailing garbage: %v", err)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestBodyErrorsPassThrough(t *testing.T) {
	sentinel := errors.New("connection reset")
	full := gzipped(t, strings.Repeat("{\"a\":1}\n", 5000))
	r, err := NewReader(&failingReader{data: full[:len(full)/2], err: sentinel}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, err = r.Next()
		if err != nil {
			break
		}
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want the body's own error", err)
	}
	if _, again := r.Next(); !errors.Is(again, sentinel) {
		t.Fatalf("error is not sticky: %v", again)
	}
}

func TestMemoryDoesNotGrowWithStreamSize(t *testing.T) {
	// The reader's own buffers must stay at the line size however long the stream is.
	in := strings.Repeat("{\"a\":\"0123456789\"}\n", 200_000)
	r, err := NewReader(bytes.NewReader(gzipped(t, in)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := r.Next(); err != nil {
			break
		}
		n++
	}
	if n != 200_000 || cap(r.line) > 64<<10 {
		t.Fatalf("%d lines, line buffer capacity %d", n, cap(r.line))
	}
	if r.DecompressedBytes() != int64(len(in)) || r.Lines() != 200_000 || !r.Gzipped() {
		t.Fatalf("counters: %d bytes, %d lines", r.DecompressedBytes(), r.Lines())
	}
}

func BenchmarkGzipLines(b *testing.B) {
	var sb strings.Builder
	row := `{"Id":"dev_software_1.0_CVE-2024-0001","DeviceId":"0123456789abcdef","DeviceName":"host.contoso.com","OSPlatform":"Windows11","SoftwareName":"chrome","SoftwareVersion":"1.2.3","CveId":"CVE-2024-0001","VulnerabilitySeverityLevel":"High","CvssScore":7.5,"DiskPaths":["C:\\Program Files\\x.exe"]}`
	for range 10_000 {
		sb.WriteString(row + "\n")
	}
	data := gzipped(b, sb.String())
	b.SetBytes(int64(sb.Len()))
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
