//go:build mage

// Build, generate and test defenderbeat: "go tool mage -l" lists the targets.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/magefile/mage/mg"
	"github.com/magefile/mage/sh"

	devtools "github.com/elastic/beats/v7/dev-tools/mage"

	"github.com/defenderbeat/defenderbeat/packaging"
	"github.com/defenderbeat/defenderbeat/packaging/fleet"
)

func init() {
	// Without it dev-tools names the fields asset after the folder, and the template loses our fields.
	devtools.BeatName = "defenderbeat"
	// Derived from the folder name before init runs: the generated configs would name the
	// default index after whatever directory the repository was checked out in.
	devtools.BeatIndexPrefix = "defenderbeat"
	devtools.BeatDescription = "Ships Microsoft Defender XDR alerts, incidents, events and vulnerabilities."
	devtools.BeatLicense = "ASL 2.0"
}

// Build compiles a release binary for this machine: static, stripped, with version and commit
// stamped.
func Build() error {
	host := packaging.Platform{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	return packaging.BuildBinary(".", host.Executable(), host, commit(), time.Now())
}

// Package builds the release archives into build/distributions, each with a .sha512:
// defenderbeat-<version>-linux-x86_64.tar.gz, -linux-arm64.tar.gz and -windows-x86_64.zip
// (PLATFORMS=linux/amd64,windows/amd64 builds only those), and the Fleet integration package,
// validated, into build/packages.
func Package() error {
	platforms, err := packaging.ParsePlatforms(os.Getenv("PLATFORMS"))
	if err != nil {
		return err
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	release := packaging.Release{
		Root:   root,
		Out:    filepath.Join(root, "build", "distributions"),
		Commit: commit(),
		Built:  time.Now().UTC().Truncate(time.Second),
	}
	for _, p := range platforms {
		path, err := release.Archive(p)
		if err != nil {
			return err
		}
		fmt.Println(path)
	}
	return FleetPackage()
}

// FleetPackage builds the Elastic integration package into build/packages/defenderbeat-<version>
// and its .zip, and validates it with package-spec.
func FleetPackage() error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := fleet.ForBeat(root, filepath.Join(root, "build", "packages"), packaging.DefaultVersion()).Build()
	if err != nil {
		return err
	}
	if err := fleet.Validate(dir); err != nil {
		return fmt.Errorf("the integration package in %s is invalid: %w", dir, err)
	}
	zipped, err := fleet.Zip(dir)
	if err != nil {
		return err
	}
	fmt.Println(zipped)
	return nil
}

// commit is the checked-out commit, for the binary's `version` output.
func commit() string {
	if c, _ := sh.Output("git", "rev-parse", "HEAD"); c != "" {
		return c
	}
	return "unknown"
}

// Update regenerates everything derived from _meta and module/*/_meta.
func Update() { mg.SerialDeps(Fields, Config) }

// Fields writes include/fields.yml from libbeat's ECS fields, _meta/fields.common.yml and every
// module/<dataset>/_meta/fields.yml.
func Fields() error {
	return devtools.GenerateFieldsYAMLTo("include/fields.yml", "module")
}

// Config writes defenderbeat.yml and defenderbeat.reference.yml; the reference carries every
// dataset's own _meta/config.yml so docs and code cannot drift.
func Config() error {
	if err := os.MkdirAll("build/config", 0o755); err != nil {
		return err
	}
	snippets, err := filepath.Glob("module/*/_meta/config.yml")
	if err != nil {
		return err
	}
	var ref strings.Builder
	ref.WriteString("{{define \"beat.reference.yml.tmpl\"}}\n")
	ref.WriteString("######################## defenderbeat Configuration Reference ###################\n\n")
	ref.WriteString("# ============================== Inputs =======================================\n\n")
	ref.WriteString("defenderbeat.inputs:\n")
	for _, s := range snippets {
		body, err := os.ReadFile(s)
		if err != nil {
			return err
		}
		ref.Write(body)
		ref.WriteString("\n")
	}
	ref.WriteString("# Where the cursors are kept, relative to path.data.\n#defenderbeat.registry.path: registry\n{{end}}\n")
	refTmpl := "build/config/beat.reference.yml.tmpl"
	if err := os.WriteFile(refTmpl, []byte(ref.String()), 0o644); err != nil {
		return err
	}
	p := devtools.DefaultConfigFileParams()
	p.Templates = append(p.Templates, "_meta/config/*.tmpl", refTmpl)
	p.ExtraVars["ExcludeDashboards"] = false
	return devtools.Config(devtools.ShortConfigType|devtools.ReferenceConfigType, p, ".")
}

// Test runs every test the README's test command runs.
func Test() error {
	return sh.RunV("./scripts/test")
}
