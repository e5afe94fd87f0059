package packaging

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"debug/elf"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// unpack extracts a tar.gz or zip archive into dir, keeping the modes, and returns its entries
// (files only) with their modes.
func unpack(t *testing.T, archive, dir string) map[string]fs.FileMode {
	t.Helper()
	entries := map[string]fs.FileMode{}
	write := func(name string, mode fs.FileMode, r io.Reader) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if !strings.HasPrefix(path, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("entry %q escapes the folder", name)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, r); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		entries[name] = mode
	}
	if strings.HasSuffix(archive, ".zip") {
		zr, err := zip.OpenReader(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			if f.FileInfo().IsDir() {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			write(f.Name, f.Mode().Perm(), rc)
			rc.Close()
		}
		return entries
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			write(hdr.Name, fs.FileMode(hdr.Mode).Perm(), tr)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestArchiveRunsWhereItIsUnpacked builds this machine's release archive (the test builds no
// other platform: a cross build takes minutes; `go tool mage package` builds them all), unpacks
// it, checks its contents, and runs `defenderbeat version` and `test config` from it, the latter
// also with the command line of the systemd unit it ships.
func TestArchiveRunsWhereItIsUnpacked(t *testing.T) {
	host := Platform{runtime.GOOS, runtime.GOARCH}
	if !slices.Contains(Platforms, host) {
		t.Fatalf("this test runs on a release platform (%v), not %s", Platforms, host)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	release := Release{Root: root, Out: t.TempDir(), Commit: "0123456789abcdef0123456789abcdef01234567", Built: time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)}
	path, err := release.Archive(host)
	if err != nil {
		t.Fatal(err)
	}
	version := DefaultVersion()
	top := Name + "-" + version + "-" + host.Suffix()
	if want := top + map[string]string{"linux": ".tar.gz", "windows": ".zip"}[host.GOOS]; filepath.Base(path) != want {
		t.Fatalf("archive %s, want %s", filepath.Base(path), want)
	}
	sum := sha512.Sum512([]byte(readFile(t, path)))
	if got, want := readFile(t, path+".sha512"), hex.EncodeToString(sum[:])+"  "+filepath.Base(path)+"\n"; got != want {
		t.Fatalf(".sha512 = %q, want %q", got, want)
	}

	dir := t.TempDir()
	entries := unpack(t, path, dir)
	home := filepath.Join(dir, top)
	want := []string{host.Executable(), Name + ".yml", Name + ".reference.yml", Name + ".spec.yml",
		"README.md", "LICENSE.txt", "NOTICE.txt", "licenses/ELASTIC-LICENSE.txt"}
	if host.GOOS == "linux" {
		want = append(want, Name+".service")
	} else {
		want = append(want, "install-service-"+Name+".ps1", "uninstall-service-"+Name+".ps1")
	}
	_ = filepath.WalkDir(filepath.Join(root, "_meta", "kibana"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(root, "_meta", "kibana"), p)
			want = append(want, "kibana/"+filepath.ToSlash(rel))
		}
		return nil
	})
	var got []string
	for name := range entries {
		rel, ok := strings.CutPrefix(name, top+"/")
		if !ok {
			t.Fatalf("entry %s is not under %s/", name, top)
		}
		got = append(got, rel)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("archive holds\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if host.GOOS == "linux" {
		if mode := entries[top+"/"+Name]; mode != 0o755 {
			t.Errorf("binary mode %v", mode)
		}
		if mode := entries[top+"/"+Name+".yml"]; mode != 0o600 {
			t.Errorf("%s.yml mode %v: libbeat refuses a configuration others may write", Name, mode)
		}
		bin, err := elf.Open(filepath.Join(home, Name))
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range bin.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Error("the binary is dynamically linked; a release binary must run on any distribution")
			}
		}
		bin.Close()
	}
	for archived, repo := range map[string]string{
		Name + ".yml": Name + ".yml", Name + ".reference.yml": Name + ".reference.yml", Name + ".spec.yml": Name + ".spec.yml",
		"README.md": "README.md", "LICENSE.txt": "LICENSE",
	} {
		if readFile(t, filepath.Join(home, archived)) != readFile(t, filepath.Join(root, repo)) {
			t.Errorf("%s differs from the repository's %s", archived, repo)
		}
	}
	if !strings.Contains(readFile(t, filepath.Join(home, "LICENSE.txt")), "Apache License") {
		t.Error("LICENSE.txt is not the Apache License")
	}
	notice := readFile(t, filepath.Join(home, "NOTICE.txt"))
	for _, wantText := range []string{"github.com/elastic/beats/v7 ", "  x-pack/libbeat/management\n", "github.com/elastic/elastic-agent-client/v7 v", "  pkg/client\n", "licenses/ELASTIC-LICENSE.txt", "github.com/elastic/elastic-agent-libs "} {
		if !strings.Contains(notice, wantText) {
			t.Errorf("NOTICE.txt lacks %q:\n%s", wantText, notice)
		}
	}
	if !strings.HasPrefix(readFile(t, filepath.Join(home, "licenses", "ELASTIC-LICENSE.txt")), "ELASTIC LICENSE AGREEMENT") {
		t.Error("licenses/ELASTIC-LICENSE.txt is not the Elastic License")
	}

	binary := filepath.Join(home, host.Executable())
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Dir = home
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(nil, "version")
	if err != nil || !strings.Contains(out, version) || !strings.Contains(out, release.Commit) {
		t.Fatalf("version: %v\n%s", err, out)
	}
	credentials := []string{"DEFENDER_TENANT_ID=00000000-0000-0000-0000-000000000001", "DEFENDER_CLIENT_ID=app", "DEFENDER_CLIENT_SECRET=secret"}
	if out, err := run(credentials, "test", "config"); err != nil || !strings.Contains(out, "Config OK") {
		t.Fatalf("test config with credentials: %v\n%s", err, out)
	}
	// The shipped configuration names what is missing rather than starting without it.
	if out, err := run([]string{"DEFENDER_TENANT_ID=", "DEFENDER_CLIENT_ID=", "DEFENDER_CLIENT_SECRET="}, "test", "config"); err == nil || !strings.Contains(out, "tenant_id") {
		t.Fatalf("test config without credentials: %v\n%s", err, out)
	}

	if host.GOOS == "linux" {
		args := unitCommand(t, readFile(t, filepath.Join(home, Name+".service")), map[string]string{
			"/usr/share/defenderbeat": home,
			"/etc/defenderbeat":       home,
			"/var/lib/defenderbeat":   t.TempDir(),
			"/var/log/defenderbeat":   t.TempDir(),
		})
		if args[0] != binary {
			t.Fatalf("the unit runs %s, not the archive's binary", args[0])
		}
		if out, err := run(credentials, append(args[1:], "test", "config")...); err != nil || !strings.Contains(out, "Config OK") {
			t.Fatalf("test config with the unit's command line %v: %v\n%s", args, err, out)
		}
	}
}

// unitCommand reads a systemd unit's ExecStart with its $VARIABLES expanded from its
// Environment lines, after checking the service runs as its own user with its data under
// /var/lib/defenderbeat, and maps the install paths to the test's.
func unitCommand(t *testing.T, unit string, paths map[string]string) []string {
	t.Helper()
	env := map[string]string{}
	var exec string
	keys := map[string]string{}
	for _, line := range strings.Split(unit, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		keys[key] = value
		switch key {
		case "Environment":
			name, v, _ := strings.Cut(strings.Trim(value, `"`), "=")
			env[name] = v
		case "ExecStart":
			exec = value
		}
	}
	if keys["User"] != Name || keys["Group"] != Name || keys["StateDirectory"] != Name {
		t.Fatalf("the unit must run as the user %s with StateDirectory=%s: %v", Name, Name, keys)
	}
	if !strings.Contains(env["BEAT_PATH_OPTS"], "--path.data /var/lib/"+Name) {
		t.Fatalf("path.data is not /var/lib/%s: %q", Name, env["BEAT_PATH_OPTS"])
	}
	var args []string
	for _, field := range strings.Fields(exec) {
		if v, ok := strings.CutPrefix(field, "$"); ok {
			args = append(args, strings.Fields(env[v])...)
			continue
		}
		args = append(args, field)
	}
	for i, a := range args {
		for from, to := range paths {
			if a == from || strings.HasPrefix(a, from+"/") {
				args[i] = to + strings.TrimPrefix(a, from)
			}
		}
	}
	return args
}

func TestArchiveWriters(t *testing.T) {
	built := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []entry{
		{name: "bin", mode: 0o755, body: []byte("binary")},
		{name: "conf/a.yml", mode: 0o600, body: []byte("a: 1")},
	}
	for _, ext := range []string{".tar.gz", ".zip"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x"+ext)
			write := writeTarGz
			if ext == ".zip" {
				write = writeZip
			}
			if err := write(path, "top", entries, built); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			got := unpack(t, path, dir)
			if len(got) != 2 || got["top/bin"] != 0o755 || got["top/conf/a.yml"] != 0o600 {
				t.Fatalf("entries %v", got)
			}
			if !bytes.Equal([]byte(readFile(t, filepath.Join(dir, "top", "conf", "a.yml"))), []byte("a: 1")) {
				t.Fatal("content changed")
			}
		})
	}
}

func TestParsePlatforms(t *testing.T) {
	all, err := ParsePlatforms("")
	if err != nil || !slices.Equal(all, Platforms) {
		t.Fatalf("empty list: %v, %v", all, err)
	}
	some, err := ParsePlatforms("windows/amd64, linux/arm64")
	if err != nil || !slices.Equal(some, []Platform{{"windows", "amd64"}, {"linux", "arm64"}}) {
		t.Fatalf("%v, %v", some, err)
	}
	if _, err := ParsePlatforms("darwin/arm64"); err == nil {
		t.Fatal("a platform that is not released was accepted")
	}
	if got := (Platform{"linux", "amd64"}).Suffix(); got != "linux-x86_64" {
		t.Fatalf("suffix %s", got)
	}
}
