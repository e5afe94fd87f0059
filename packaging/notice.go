package packaging

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// goPackage is what `go list -json` says of a package that matters here.
type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Standard   bool
	Module     *goModule
}

type goModule struct {
	Path, Version, Dir string
	Main               bool
	Replace            *goModule
}

func (m *goModule) String() string {
	if m.Replace != nil {
		return fmt.Sprintf("%s => %s %s", m.Path, m.Replace.Path, m.Replace.Version)
	}
	return m.Path + " " + m.Version
}

// linkedPackages lists the packages the binary for p links, as `go build` selects them there.
func linkedPackages(root string, p Platform) ([]goPackage, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Dir,GoFiles,Standard,Module", ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.GOOS, "GOARCH="+p.GOARCH)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg goPackage
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, pkg)
	}
}

// elasticLicensed reports whether a package's source says it is under the Elastic License, in
// the comment that opens any of its files (libbeat's x-pack folder and elastic-agent-client
// say so in every file).
func elasticLicensed(pkg goPackage) (bool, error) {
	for _, name := range pkg.GoFiles {
		f, err := os.Open(filepath.Join(pkg.Dir, name))
		if err != nil {
			return false, err
		}
		scanner := bufio.NewScanner(f)
		for scanner.Scan() {
			line := strings.TrimSpace(scanner.Text())
			if strings.HasPrefix(line, "package ") {
				break
			}
			if strings.Contains(line, "Elastic License") {
				f.Close()
				return true, nil
			}
		}
		f.Close()
	}
	return false, nil
}

// elasticLicenceText is the text of the Elastic License a module ships: its own licence file
// when that is the Elastic License (elastic-agent-client), else the one it keeps for its
// Elastic-licensed folders (libbeat: licenses/ELASTIC-LICENSE.txt).
func elasticLicenceText(m *goModule) ([]byte, error) {
	dir := m.Dir
	if m.Replace != nil && m.Replace.Dir != "" {
		dir = m.Replace.Dir
	}
	for _, name := range []string{"LICENSE.txt", "LICENSE", "LICENSE.md"} {
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(body), []byte("ELASTIC LICENSE")) {
			return body, nil
		}
	}
	body, err := os.ReadFile(filepath.Join(dir, "licenses", "ELASTIC-LICENSE.txt"))
	if err != nil {
		return nil, fmt.Errorf("module %s links Elastic-licensed packages but ships no Elastic License text this build knows where to find", m)
	}
	return body, nil
}

// Notice writes NOTICE.txt for the binary of p and returns the licence texts it refers to, by
// file name under licenses/.
func Notice(root string, p Platform) (string, map[string][]byte, error) {
	pkgs, err := linkedPackages(root, p)
	if err != nil {
		return "", nil, err
	}
	elastic := map[string][]string{} // module → packages, relative to the module
	modules := map[string]*goModule{}
	linked := map[string]int{} // module → packages linked
	for _, pkg := range pkgs {
		if pkg.Standard || pkg.Module == nil || pkg.Module.Main {
			continue
		}
		key := pkg.Module.String()
		modules[key] = pkg.Module
		linked[key]++
		isElastic, err := elasticLicensed(pkg)
		if err != nil {
			return "", nil, err
		}
		if isElastic {
			rel := strings.TrimPrefix(strings.TrimPrefix(pkg.ImportPath, pkg.Module.Path), "/")
			elastic[key] = append(elastic[key], cmp.Or(rel, "."))
		}
	}

	licences := map[string][]byte{}
	names := map[string]string{} // licence text → file name
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nCopyright the %s authors.\n\n", Name, Name)
	fmt.Fprintf(&b, "%s's own code is licensed under the Apache License, Version 2.0 (LICENSE.txt).\n\n", Name)
	heading(&b, fmt.Sprintf("Elastic-licensed components linked into this binary (%s)", p))
	b.WriteString("The packages below are licensed under the Elastic License, not under the Apache License:\n")
	b.WriteString("whoever distributes this binary distributes them under the terms of that licence.\n")
	b.WriteString("libbeat itself imports elastic-agent-client; x-pack/libbeat/management lets defenderbeat\n")
	b.WriteString("run under Elastic Agent.\n\n")
	for _, key := range sortedKeys(elastic) {
		text, err := elasticLicenceText(modules[key])
		if err != nil {
			return "", nil, err
		}
		name, ok := names[string(text)]
		if !ok {
			name = "ELASTIC-LICENSE.txt"
			if len(names) > 0 {
				name = "ELASTIC-LICENSE-" + strings.NewReplacer("/", "_", ".", "_").Replace(modules[key].Path) + ".txt"
			}
			names[string(text)] = name
			licences[name] = text
		}
		fmt.Fprintf(&b, "%s (licence text: licenses/%s)\n", key, name)
		pkgsOf := elastic[key]
		slices.Sort(pkgsOf)
		for _, rel := range pkgsOf {
			fmt.Fprintf(&b, "  %s\n", rel)
		}
	}
	b.WriteString("\n")
	heading(&b, "Other modules linked into this binary")
	b.WriteString("Each is under its own licence, found in the module's source at the version listed.\n\n")
	for _, key := range sortedKeys(modules) {
		if len(elastic[key]) == linked[key] {
			continue // wholly Elastic-licensed, listed above
		}
		fmt.Fprintf(&b, "  %s\n", key)
	}
	return b.String(), licences, nil
}

func heading(b *strings.Builder, title string) {
	b.WriteString(title + "\n" + strings.Repeat("=", len(title)) + "\n")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
