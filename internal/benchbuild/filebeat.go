package benchbuild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Filebeat builds x-pack/filebeat from the beats version go.mod pins into work/filebeat and
// returns its path. It builds in a temporary module that requires that version with go.mod's
// replace block (the beats module's own), and go.sum's hashes plus the beats module's for the
// dependencies only x-pack/filebeat has. It takes minutes.
func Filebeat(work string) (string, error) {
	root := ModuleRoot()
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", err
	}
	var version, replace string
	for _, line := range strings.Split(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/elastic/beats/v7" && version == "" {
			version = f[1]
		}
	}
	if i := strings.Index(string(gomod), "\nreplace ("); i >= 0 {
		rest := string(gomod)[i+1:]
		if j := strings.Index(rest, "\n)"); j >= 0 {
			replace = rest[:j+2] + "\n"
		}
	}
	if version == "" {
		return "", errors.New("go.mod does not require github.com/elastic/beats/v7")
	}
	dir := filepath.Join(work, "filebeat-build")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	mod := fmt.Sprintf("module filebeatbench\n\ngo 1.25.0\n\nrequire github.com/elastic/beats/v7 %s\n\n%s", version, replace)
	mainGo := "package main\n\nimport (\n\t\"os\"\n\n\t\"github.com/elastic/beats/v7/x-pack/filebeat/cmd\"\n)\n\n" +
		"func main() {\n\tif err := cmd.Filebeat().Execute(); err != nil {\n\t\tos.Exit(1)\n\t}\n}\n"
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return "", err
	}
	modCache, _ := exec.Command("go", "env", "GOMODCACHE").Output()
	beatsSums, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(modCache)), "github.com/elastic/beats/v7@"+version, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("the pinned beats module is not in the module cache (go mod download): %w", err)
	}
	for name, content := range map[string]string{"go.mod": mod, "main.go": mainGo, "go.sum": string(sums) + string(beatsSums)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return "", err
		}
	}
	bin := filepath.Join(work, "filebeat")
	fmt.Fprintln(os.Stderr, "building", bin, "(x-pack/filebeat", version+"; this takes minutes)")
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-trimpath", "-ldflags=-s -w", "-o", bin, "."}} {
		c := exec.Command("go", args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GONOSUMDB=github.com/elastic")
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			return "", fmt.Errorf("go %s (filebeat): %w", args[0], err)
		}
	}
	return bin, nil
}
