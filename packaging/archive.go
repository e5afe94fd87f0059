package packaging

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"time"
)

// open returns an entry's content and its size.
func (e entry) open() (io.ReadCloser, int64, error) {
	if e.path == "" {
		return io.NopCloser(bytes.NewReader(e.body)), int64(len(e.body)), nil
	}
	f, err := os.Open(e.path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// writeTarGz writes the entries under the folder top, owned by root and dated built, so that
// two builds of one commit differ only in what the compiler makes differ.
func writeTarGz(path, top string, entries []entry, built time.Time) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, e := range entries {
		for _, dir := range parents(top + "/" + e.name) {
			if dirs[dir] {
				continue
			}
			dirs[dir] = true
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: built, Uname: "root", Gname: "root", Format: tar.FormatPAX}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		}
		body, size, err := e.open()
		if err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: top + "/" + e.name, Mode: int64(e.mode), Size: size, ModTime: built, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			body.Close()
			return err
		}
		_, err = io.Copy(tw, body)
		body.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// writeZip writes the entries under the folder top.
func writeZip(path, top string, entries []entry, built time.Time) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	zw := zip.NewWriter(f)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: top + "/" + e.name, Method: zip.Deflate, Modified: built}
		hdr.SetMode(e.mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		body, _, err := e.open()
		if err != nil {
			return err
		}
		_, err = io.Copy(w, body)
		body.Close()
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

// parents lists the folders above a slash-separated path, outermost first.
func parents(name string) []string {
	var dirs []string
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			dirs = append(dirs, name[:i])
		}
	}
	return dirs
}
