// Package packaging builds defenderbeat's release archives: for each platform a static binary
// with the configuration files, the Elastic Agent spec, the Kibana assets, the licences and a
// NOTICE, and the service definitions of that system (a systemd unit, Windows service scripts).
// `go tool mage package` runs it; its test unpacks an archive and runs the binary from it.
package packaging

import (
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/version"
)

// Name is the beat's name, of its binary and of every file named after it.
const Name = "defenderbeat"

// Platform is one release target.
type Platform struct{ GOOS, GOARCH string }

// Platforms are the targets of a release.
var Platforms = []Platform{{"linux", "amd64"}, {"linux", "arm64"}, {"windows", "amd64"}}

// String is the platform as Go names it: linux/amd64.
func (p Platform) String() string { return p.GOOS + "/" + p.GOARCH }

// Suffix names the platform in archive names as the Beats do: linux-x86_64, windows-x86_64.
func (p Platform) Suffix() string {
	arch := p.GOARCH
	if arch == "amd64" {
		arch = "x86_64"
	}
	return p.GOOS + "-" + arch
}

// Executable is the binary's file name on the platform.
func (p Platform) Executable() string {
	if p.GOOS == "windows" {
		return Name + ".exe"
	}
	return Name
}

// ParsePlatforms reads a list such as "linux/amd64,windows/amd64"; empty means every release
// platform.
func ParsePlatforms(list string) ([]Platform, error) {
	if strings.TrimSpace(list) == "" {
		return Platforms, nil
	}
	var out []Platform
	for _, item := range strings.Split(list, ",") {
		goos, goarch, ok := strings.Cut(strings.TrimSpace(item), "/")
		p := Platform{goos, goarch}
		known := false
		for _, r := range Platforms {
			known = known || r == p
		}
		if !ok || !known {
			return nil, fmt.Errorf("platform %q is not one of linux/amd64, linux/arm64, windows/amd64", item)
		}
		out = append(out, p)
	}
	return out, nil
}

// Release describes one build of the archives.
type Release struct {
	Root    string    // the repository
	Out     string    // where the archives go
	Version string    // default: the version the binary reports (libbeat's)
	Commit  string    // stamped into the binary
	Built   time.Time // stamped into the binary, and the time of every archive entry
}

// DefaultVersion is the version `defenderbeat version` prints.
func DefaultVersion() string { return version.GetDefaultVersion() }

// LDFlags are the linker flags of a release binary: stripped, with commit and build time.
func LDFlags(commit string, built time.Time) string {
	return strings.Join([]string{
		"-s", "-w",
		"-X github.com/elastic/beats/v7/libbeat/version.commit=" + commit,
		"-X github.com/elastic/beats/v7/libbeat/version.buildTime=" + built.UTC().Format(time.RFC3339),
	}, " ")
}

// BuildBinary compiles the beat for p into path: static (no cgo, so one binary runs on every
// distribution), stripped, without local paths.
func BuildBinary(root, path string, p Platform, commit string, built time.Time) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", LDFlags(commit, built), "-o", path, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.GOOS, "GOARCH="+p.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s for %s: %v\n%s", Name, p, err, out)
	}
	return nil
}

// ArchiveName is the archive's file name; its entries are under the same name without the
// extension.
func (r Release) ArchiveName(p Platform) string {
	ext := ".tar.gz"
	if p.GOOS == "windows" {
		ext = ".zip"
	}
	return r.dirName(p) + ext
}

func (r Release) dirName(p Platform) string {
	return fmt.Sprintf("%s-%s-%s", Name, r.Version, p.Suffix())
}

// entry is one file of an archive: the file at path, or body.
type entry struct {
	name string // relative to the archive's top folder, with forward slashes
	mode fs.FileMode
	path string
	body []byte
}

// Archive builds the archive for p in r.Out, with a .sha512 file beside it, and returns its
// path.
func (r Release) Archive(p Platform) (string, error) {
	if r.Version == "" {
		r.Version = DefaultVersion()
	}
	stage, err := os.MkdirTemp("", Name+"-package-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	binary := filepath.Join(stage, p.Executable())
	if err := BuildBinary(r.Root, binary, p, r.Commit, r.Built); err != nil {
		return "", err
	}
	notice, licences, err := Notice(r.Root, p)
	if err != nil {
		return "", err
	}

	// source is a file of the repository (or the build) and its place in the archive.
	type source struct {
		name string
		mode fs.FileMode
		path string
	}
	sources := []source{
		{p.Executable(), 0o755, binary},
		// libbeat refuses a configuration file others may write; Beats ship theirs 0600.
		{Name + ".yml", 0o600, filepath.Join(r.Root, Name+".yml")},
		{Name + ".reference.yml", 0o644, filepath.Join(r.Root, Name+".reference.yml")},
		{Name + ".spec.yml", 0o644, filepath.Join(r.Root, Name+".spec.yml")},
		{"README.md", 0o644, filepath.Join(r.Root, "README.md")},
		{"LICENSE.txt", 0o644, filepath.Join(r.Root, "LICENSE")},
	}
	switch p.GOOS {
	case "linux":
		sources = append(sources, source{Name + ".service", 0o644, filepath.Join(r.Root, "packaging", "linux", Name+".service")})
	case "windows":
		for _, script := range []string{"install-service-" + Name + ".ps1", "uninstall-service-" + Name + ".ps1"} {
			sources = append(sources, source{script, 0o644, filepath.Join(r.Root, "packaging", "windows", script)})
		}
	}
	// Kibana assets: `defenderbeat setup --dashboards` loads them from path.home/kibana.
	kibana := filepath.Join(r.Root, "_meta", "kibana")
	err = filepath.WalkDir(kibana, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(kibana, path)
		if err != nil {
			return err
		}
		sources = append(sources, source{"kibana/" + filepath.ToSlash(rel), 0o644, path})
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		return "", err
	}

	var entries []entry
	for _, s := range sources {
		entries = append(entries, entry{name: s.name, mode: s.mode, path: s.path})
	}
	entries = append(entries, entry{name: "NOTICE.txt", mode: 0o644, body: []byte(notice)})
	for name, body := range licences {
		entries = append(entries, entry{name: "licenses/" + name, mode: 0o644, body: body})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(r.Out, r.ArchiveName(p))
	if p.GOOS == "windows" {
		err = writeZip(path, r.dirName(p), entries, r.Built)
	} else {
		err = writeTarGz(path, r.dirName(p), entries, r.Built)
	}
	if err != nil {
		return "", err
	}
	return path, writeChecksum(path)
}

// writeChecksum writes <archive>.sha512 in the format `sha512sum -c` reads.
func writeChecksum(path string) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sum := sha512.Sum512(body)
	line := hex.EncodeToString(sum[:]) + "  " + filepath.Base(path) + "\n"
	return os.WriteFile(path+".sha512", []byte(line), 0o644)
}
