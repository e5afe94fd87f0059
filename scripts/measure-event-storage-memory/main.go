// Command measure-event-storage-memory measures the peak resident memory (VmHWM) of the
// defenderbeat binary while its defender-event-storage input reads one blob of each given size
// from the simulated tenant's storage account (lines generated as they are read, so the
// simulator holds none of it), with the file output writing every document (rotated so the
// disk does not fill). It prints a Markdown table for docs/benchmarks.md.
//
//	go run ./scripts/measure-event-storage-memory -sizes 10MB,1GB
//
// Without -binary it builds the beat from the module root first (CGO_ENABLED=0 -trimpath
// -ldflags='-s -w', as released). Linux only: it reads /proc/<pid>/status.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/loopback"

	"github.com/defenderbeat/defenderbeat/internal/benchbuild"

	"gopkg.in/yaml.v2"

	"github.com/defenderbeat/defenderbeat/internal/procstat"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

func main() {
	var (
		binary  = flag.String("binary", "", "defenderbeat binary to measure (default: build it from the module root)")
		sizes   = flag.String("sizes", "10MB,1GB", "comma-separated blob sizes (KB, MB or GB)")
		timeout = flag.Duration("timeout", 20*time.Minute, "give up on one size after this long")
		keep    = flag.Bool("keep", false, "keep the work directory (config, logs)")
	)
	flag.Parse()
	if err := run(*binary, *sizes, *timeout, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "measure-event-storage-memory:", err)
		os.Exit(1)
	}
}

type result struct {
	size, records int64
	peakKB        int64
	duration      time.Duration
}

func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	for suffix, unit := range map[string]int64{"GB": 1 << 30, "MB": 1 << 20, "KB": 1 << 10} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * unit, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func run(binary, sizes string, timeout time.Duration, keep bool) error {
	work, cleanup, err := benchbuild.Workdir("defenderbeat-storage-memory-", keep)
	if err != nil {
		return err
	}
	defer cleanup()
	if binary == "" {
		if binary, err = benchbuild.Defenderbeat(work); err != nil {
			return err
		}
	}
	var results []result
	for i, s := range strings.Split(sizes, ",") {
		size, err := parseSize(s)
		if err != nil || size <= 0 {
			return fmt.Errorf("-sizes: %q is not a size", s)
		}
		res, err := measure(binary, filepath.Join(work, strconv.Itoa(i)), size, timeout)
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		fmt.Fprintf(os.Stderr, "%s: %d records, peak RSS %.1f MiB in %s\n", s, res.records, float64(res.peakKB)/1024, res.duration.Round(time.Second))
		results = append(results, res)
	}
	fmt.Printf("| blob | records | peak RSS (VmHWM) | time to read | records/s | MB/s |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Printf("| %.0f MiB | %d | %.1f MiB | %s | %.0f | %.1f |\n", float64(r.size)/(1<<20), r.records, float64(r.peakKB)/1024,
			r.duration.Round(100*time.Millisecond), float64(r.records)/r.duration.Seconds(), float64(r.size)/(1<<20)/r.duration.Seconds())
	}
	fmt.Printf("\nMeasured with %s, %s/%s, %d CPUs, output.file (rotated), beat defaults otherwise.\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	return nil
}

// published reads records_published_total of the beat's inputs from its monitoring endpoint.
func published(port int) int64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/inputs/", port))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var inputs []map[string]any
	if json.NewDecoder(resp.Body).Decode(&inputs) != nil {
		return -1
	}
	var n int64
	for _, in := range inputs {
		if v, ok := in["records_published_total"].(float64); ok {
			n += int64(v)
		}
	}
	return n
}

func measure(binary, dir string, size int64, timeout time.Duration) (result, error) {
	res := result{size: size}
	sim, err := simulator.Start(simulator.Config{Seed: 1, Streaming: &simulator.StreamingConfig{Storage: true}})
	if err != nil {
		return res, err
	}
	defer sim.Close()
	const table = "Measure"
	if res.records, err = sim.PutLargeTableBlob(table, time.Now(), size); err != nil {
		return res, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return res, err
	}
	cfg := map[string]any{
		"defenderbeat.inputs": []any{map[string]any{
			"type": "defender-event-storage", "id": "memory",
			"storage_account_connection_string": sim.StorageConnectionString(),
			"tables":                            []string{table},
		}},
		"output.file": map[string]any{
			"path": filepath.Join(dir, "out"), "filename": "documents",
			"rotate_every_kb": 10240, "number_of_files": 2,
		},
		"http.enabled": true, "http.host": "127.0.0.1", "http.port": port,
		"logging.level": "info", "logging.to_stderr": true,
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return res, err
	}
	cfgPath := filepath.Join(dir, "defenderbeat.yml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return res, err
	}
	logFile, err := os.Create(filepath.Join(dir, "defenderbeat.log"))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-c", cfgPath, "--path.home", dir, "--path.data", filepath.Join(dir, "data"), "-e")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	}()
	for published(port) < res.records {
		if ctx.Err() != nil {
			return res, fmt.Errorf("not read within %s; see %s", timeout, logFile.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.duration = time.Since(start)
	// Let the output drain what is still queued, so the peak covers the whole blob.
	time.Sleep(3 * time.Second)
	res.peakKB, err = procstat.PeakRSSKiB(cmd.Process.Pid)
	return res, err
}
