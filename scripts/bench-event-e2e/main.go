// Command bench-event-e2e runs Filebeat's own azure-eventhub input and defenderbeat's
// defender-event input side by side on the same Event Hubs fake, the same records and the same
// file output, and prints a Markdown table for docs/benchmarks.md: records/s, CPU seconds per
// million records and peak RSS (VmHWM).
//
//	go run ./scripts/bench-event-e2e -records 200000
//
// For each beat and run, a fresh fake namespace (internal/eventhubfake, plain AMQP in the SDK's
// emulator mode, one hub of -partitions partitions) holds every record before the beat starts,
// behind paused partitions. The beat starts, claims the partitions (blob checkpoints in Azurite,
// which both inputs need for the same work), settles, and then the partitions are released. The
// measurement runs from the release until the beat's own monitoring endpoint reports every
// record acknowledged by the file output:
//   - CPU seconds are the beat process's user + system time over that span, read from
//     /proc/<pid>/stat (the kernel's per-process accounting that getrusage reports), so other
//     processes on the machine do not inflate them; records/s is wall-clock and does.
//   - Peak RSS is VmHWM from /proc/<pid>/status at the end, which covers start-up too.
//
// Filebeat emits each record raw (its JSON in `message`); defenderbeat maps each record to an
// ECS document and keeps the record in event.original. Without -filebeat the script builds
// x-pack/filebeat from the beats version pinned in go.mod (a temporary module that requires it,
// with go.mod's replace block; CGO_ENABLED=0; several minutes). Without -defenderbeat it builds
// the beat from the module root. Linux only; needs Azurite (npm install at the module root).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/benchbuild"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
	"github.com/defenderbeat/defenderbeat/internal/golden"
	"github.com/defenderbeat/defenderbeat/internal/procstat"
)

const hubName = "benchhub"

type options struct {
	records, perMessage, partitions, runs int
	filebeat, defenderbeat                string
	beats                                 string
	settle, timeout                       time.Duration
	azurite                               string
	heapProfile, cpuProfile               string
	keep                                  bool
	defenderOptions                       map[string]string // -defenderbeat-option key=value
	settings                              map[string]string // -setting key=value, for both beats
	beatEnv                               []string          // -beat-env KEY=value, for both beats
}

func main() {
	var o options
	flag.IntVar(&o.records, "records", 200000, "records to deliver per run (a multiple of -per-message × -partitions)")
	flag.IntVar(&o.perMessage, "per-message", 100, "records per Event Hubs message ({\"records\":[…]})")
	flag.IntVar(&o.partitions, "partitions", 4, "partitions of the hub")
	flag.IntVar(&o.runs, "runs", 1, "runs per beat (alternating)")
	flag.StringVar(&o.filebeat, "filebeat", "", "Filebeat binary (default: build x-pack/filebeat from the pinned beats module)")
	flag.StringVar(&o.defenderbeat, "defenderbeat", "", "defenderbeat binary (default: build it from the module root)")
	o.defenderOptions, o.settings = map[string]string{}, map[string]string{}
	flag.Func("defenderbeat-option", "an extra defender-event option, key=value (repeatable), e.g. partition_receive_bytes=2MiB", keyValueInto(o.defenderOptions))
	flag.Func("setting", "an extra beat setting for both beats, key=value (repeatable), e.g. queue.mem.events=1600", keyValueInto(o.settings))
	flag.Func("beat-env", "an environment variable for both beats (not this process, which serves the records), KEY=value (repeatable), e.g. GOMEMLIMIT=64MiB", func(kv string) error {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=value, got %q", kv)
		}
		o.beatEnv = append(o.beatEnv, kv)
		return nil
	})
	flag.StringVar(&o.beats, "beats", "filebeat,defenderbeat", "which beats to run")
	flag.DurationVar(&o.settle, "settle", 15*time.Second, "time the beat gets to start and claim every partition before the records are released")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on one run after this long")
	flag.StringVar(&o.azurite, "azurite", "", "azurite-blob binary (default: node_modules/.bin/azurite-blob at or above the module root)")
	flag.StringVar(&o.heapProfile, "heap-profile", "", "write each beat's heap profile (libbeat's http.pprof), taken when half the records are acknowledged, to this path prefix")
	flag.StringVar(&o.cpuProfile, "cpu-profile", "", "write each beat's CPU profile of 5 s, from 1 s after the records are released, to this path prefix")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, last output file)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-event-e2e:", err)
		os.Exit(1)
	}
}

// keyValueInto parses a repeatable key=value flag into m.
func keyValueInto(m map[string]string) func(string) error {
	return func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		m[k] = v
		return nil
	}
}

type result struct {
	beat        string
	records     int
	wall        time.Duration
	cpu         time.Duration // the beat's user+system time from release to the last ACK
	peakKB      int64
	peakAnonKB  int64         // the largest RssAnon seen, sampled every 200 ms
	fakeCPU     time.Duration // this process (the fake serving the records) over the same span
	outputBytes int64
}

func run(o options) error {
	if o.records%(o.perMessage*o.partitions) != 0 {
		return fmt.Errorf("-records must be a multiple of -per-message × -partitions (%d)", o.perMessage*o.partitions)
	}
	work, cleanup, err := benchbuild.Workdir("bench-event-e2e-", o.keep)
	if err != nil {
		return err
	}
	defer cleanup()
	root := benchbuild.ModuleRoot()
	binaries := map[string]string{"filebeat": o.filebeat, "defenderbeat": o.defenderbeat}
	beats := strings.Split(o.beats, ",")
	for _, b := range beats {
		path, ok := binaries[b]
		if !ok {
			return fmt.Errorf("-beats: unknown beat %q", b)
		}
		if path != "" {
			continue
		}
		if b == "filebeat" {
			path, err = benchbuild.Filebeat(work)
		} else {
			path, err = benchbuild.Defenderbeat(work)
		}
		if err != nil {
			return err
		}
		binaries[b] = path
	}

	mix, err := recordMix(root)
	if err != nil {
		return err
	}
	bodies, bytesTotal := messages(mix, o.records, o.perMessage)
	fmt.Fprintf(os.Stderr, "%d records in %d messages, %.1f MB of JSON\n", o.records, len(bodies), float64(bytesTotal)/1e6)

	az, err := azuritetest.Run(o.azurite)
	if err != nil {
		return err
	}
	defer az.Stop()

	var results []result
	for r := 0; r < o.runs; r++ {
		for _, b := range beats {
			dir := filepath.Join(work, fmt.Sprintf("%s-%d", b, r))
			res, err := measure(o, b, binaries[b], dir, az, bodies, fmt.Sprintf("bench-%d", r))
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", b, r+1, err)
			}
			fmt.Fprintf(os.Stderr, "%s: %.0f records/s, %.2f CPU-s per million records, peak RSS %.1f MiB\n",
				b, float64(res.records)/res.wall.Seconds(), res.cpu.Seconds()*1e6/float64(res.records), float64(res.peakKB)/1024)
			results = append(results, res)
		}
	}

	fmt.Printf("| beat | records | wall records/s | CPU-s per million records | records per CPU-s | peak RSS (VmHWM) | peak private (RssAnon) | fake's CPU-s | output MB |\n")
	fmt.Printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range results {
		fmt.Printf("| %s | %d | %.0f | %.1f | %.0f | %.1f MiB | %.1f MiB | %.1f | %.0f |\n", r.beat, r.records,
			float64(r.records)/r.wall.Seconds(), r.cpu.Seconds()*1e6/float64(r.records),
			float64(r.records)/r.cpu.Seconds(), float64(r.peakKB)/1024, float64(r.peakAnonKB)/1024, r.fakeCPU.Seconds(), float64(r.outputBytes)/1e6)
	}
	fmt.Printf("\n%d records, %d per message, %.0f bytes per record on average, %d partitions; %s, %s/%s, %d CPUs.\n",
		o.records, o.perMessage, float64(bytesTotal)/float64(o.records), o.partitions, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if len(o.settings) > 0 || len(o.beatEnv) > 0 {
		var extra []string
		for k, v := range o.settings {
			extra = append(extra, k+": "+v)
		}
		sort.Strings(extra)
		fmt.Printf("Both beats ran with %s.\n", strings.Join(append(extra, o.beatEnv...), ", "))
	}
	return nil
}

// recordMix is the module/event benchmarks' realistic stream: the event dataset's golden input
// records weighted as a Defender for Endpoint tenant streams them (75 % device tables, 12 %
// identity and cloud app, 10 % mail, 3 % alerts).
func recordMix(root string) ([][]byte, error) {
	byFamily := map[string][][]byte{}
	for _, pattern := range []string{"module/event/testdata/cases/*.log", "module/event/testdata/reference/*.log"} {
		files, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, f := range files {
			lines, err := golden.ReadLines(f)
			if err != nil {
				return nil, err
			}
			for _, line := range lines {
				var rec struct {
					Category string `json:"category"`
				}
				if json.Unmarshal(line, &rec) != nil {
					continue
				}
				if fam := family(strings.TrimPrefix(rec.Category, "AdvancedHunting-")); fam != "" {
					var compact bytes.Buffer
					if json.Compact(&compact, line) == nil {
						byFamily[fam] = append(byFamily[fam], compact.Bytes())
					}
				}
			}
		}
	}
	weights := []struct {
		family string
		weight int
	}{{"device", 75}, {"app_and_identity", 12}, {"email", 10}, {"alert", 3}}
	var mix [][]byte
	for round := 0; round < 4; round++ {
		for _, w := range weights {
			recs := byFamily[w.family]
			if len(recs) == 0 {
				return nil, fmt.Errorf("no golden records of the %s family", w.family)
			}
			for i := 0; i < w.weight; i++ {
				mix = append(mix, recs[(round*w.weight+i)%len(recs)])
			}
		}
	}
	return mix, nil
}

func family(table string) string {
	switch {
	case strings.HasPrefix(table, "Device"):
		return "device"
	case strings.HasPrefix(table, "Email"), table == "UrlClickEvents":
		return "email"
	case strings.HasPrefix(table, "Alert"):
		return "alert"
	case strings.HasPrefix(table, "Identity"), table == "CloudAppEvents":
		return "app_and_identity"
	}
	return ""
}

// messages packs n records of the mix into Streaming API messages of perMessage records.
func messages(mix [][]byte, n, perMessage int) ([][]byte, int) {
	var bodies [][]byte
	total := 0
	for i := 0; i < n; i += perMessage {
		var b bytes.Buffer
		b.WriteString(`{"records":[`)
		for j := 0; j < perMessage; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			rec := mix[(i+j)%len(mix)]
			b.Write(rec)
			total += len(rec)
		}
		b.WriteString(`]}`)
		bodies = append(bodies, b.Bytes())
	}
	return bodies, total
}

func measure(o options, beat, binary, dir string, az *azuritetest.Azurite, bodies [][]byte, container string) (result, error) {
	res := result{beat: beat, records: o.records}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	var size int64
	for _, b := range bodies {
		size += int64(len(b))
	}
	hub, err := eventhubfake.Start(eventhubfake.Config{
		Hubs:            []eventhubfake.HubConfig{{Name: hubName, Partitions: o.partitions}},
		RetentionEvents: len(bodies),
		RetentionBytes:  2 * size / int64(o.partitions),
		Logf:            func(format string, args ...any) { fmt.Fprintf(os.Stderr, "fake: "+format+"\n", args...) },
	})
	if err != nil {
		return res, err
	}
	defer hub.Close()
	for p := 0; p < o.partitions; p++ {
		if err := hub.PausePartition(hubName, strconv.Itoa(p), true); err != nil {
			return res, err
		}
	}
	for i, b := range bodies {
		if err := hub.Send(hubName, strconv.Itoa(i%o.partitions), b); err != nil {
			return res, err
		}
	}

	// The same processor settings for both inputs, under the option names they share.
	input := map[string]any{
		"id":                                "bench",
		"eventhub":                          hubName,
		"consumer_group":                    "$Default",
		"connection_string":                 hub.ConnectionString(""),
		"storage_account":                   azuritetest.AccountName,
		"storage_account_connection_string": az.ConnectionString(),
		"storage_account_container":         container + "-" + beat,
		"processor_start_position":          "earliest",
		"processor_update_interval":         "1s",
		"partition_receive_timeout":         "5s",
		"partition_receive_count":           100,
	}
	inputsKey := "defenderbeat.inputs"
	if beat == "filebeat" {
		input["type"] = "azure-eventhub"
		input["processor_version"] = "v2"
		inputsKey = "filebeat.inputs"
	} else {
		input["type"] = "defender-event"
		input["checkpoint_store"] = "blob"
		for k, v := range o.defenderOptions {
			input[k] = v
		}
	}
	cfg := map[string]any{
		inputsKey: []any{input},
		"output.file": map[string]any{
			"path": filepath.Join(dir, "out"), "filename": "documents",
			"rotate_every_kb": 51200, "number_of_files": 2,
		},
	}
	if o.heapProfile != "" || o.cpuProfile != "" {
		cfg["http.pprof.enabled"] = true
	}
	for k, v := range o.settings {
		cfg[k] = v
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	b, err := benchbuild.StartBeat(binary, beat, dir, cfg, o.beatEnv)
	if err != nil {
		return res, err
	}
	defer b.Stop(syscall.SIGINT, 15*time.Second)
	exited, port, stats, pid := b.Exited, b.Port, b.Stats, b.Cmd.Process.Pid

	select {
	case <-exited:
		return res, fmt.Errorf("the beat exited during start-up; see %s", b.Log)
	case <-time.After(o.settle):
	}
	if _, err := benchbuild.Acked(stats); err != nil {
		return res, fmt.Errorf("monitoring endpoint: %w", err)
	}

	cpu0, err := processCPU(pid)
	if err != nil {
		return res, err
	}
	self0 := selfCPU()
	start := time.Now()
	for p := 0; p < o.partitions; p++ {
		_ = hub.PausePartition(hubName, strconv.Itoa(p), false)
	}
	cpuProfiled := make(chan error, 1)
	if o.cpuProfile != "" {
		go func() {
			time.Sleep(time.Second)
			cpuProfiled <- saveProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=5", port), o.cpuProfile+beat+".pb.gz")
		}()
	} else {
		cpuProfiled <- nil
	}
	profiled := o.heapProfile == ""
	for {
		if anon, err := procstat.AnonRSSKiB(pid); err == nil {
			res.peakAnonKB = max(res.peakAnonKB, anon)
		}
		n, err := benchbuild.Acked(stats)
		if err == nil && n >= int64(o.records) {
			break
		}
		if !profiled && n >= int64(o.records/2) {
			profiled = true
			if err := saveProfile(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", port), o.heapProfile+beat+".pb.gz"); err != nil {
				return res, fmt.Errorf("heap profile: %w", err)
			}
		}
		select {
		case <-exited:
			return res, fmt.Errorf("the beat exited after %d records; see %s", n, b.Log)
		case <-ctx.Done():
			return res, fmt.Errorf("%d of %d records acknowledged within %s; see %s", n, o.records, o.timeout, b.Log)
		case <-time.After(200 * time.Millisecond):
		}
	}
	res.wall = time.Since(start)
	cpu1, err := processCPU(pid)
	if err != nil {
		return res, err
	}
	res.cpu = cpu1 - cpu0
	res.fakeCPU = selfCPU() - self0
	if res.peakKB, err = procstat.PeakRSSKiB(pid); err != nil {
		return res, err
	}
	res.outputBytes, _ = outputBytes(stats)
	if err := <-cpuProfiled; err != nil {
		return res, fmt.Errorf("CPU profile: %w", err)
	}
	return res, checkOutput(beat, filepath.Join(dir, "out"))
}

// checkOutput reads one document the file output wrote, to show it is what the beat should
// write: the raw record in message (Filebeat) or an ECS event document (defenderbeat).
func checkOutput(beat, dir string) error {
	files, _ := filepath.Glob(filepath.Join(dir, "documents*"))
	if len(files) == 0 {
		return fmt.Errorf("no output file in %s", dir)
	}
	f, err := os.Open(files[0])
	if err != nil {
		return err
	}
	defer f.Close()
	line, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return err
	}
	line, _, _ = bytes.Cut(line, []byte("\n"))
	var doc map[string]any
	if err := json.Unmarshal(line, &doc); err != nil {
		return fmt.Errorf("output document: %w", err)
	}
	switch beat {
	case "filebeat":
		if msg, _ := doc["message"].(string); !strings.Contains(msg, `"AdvancedHunting-`) {
			return fmt.Errorf("filebeat's document has no raw record in message: %.300s", line)
		}
	default:
		if ev, _ := doc["event"].(map[string]any); ev == nil || ev["dataset"] != "m365_defender.event" {
			return fmt.Errorf("defenderbeat's document is not an event document: %.300s", line)
		}
	}
	return nil
}

func saveProfile(url, path string) error {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 64<<20)); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func outputBytes(url string) (int64, error) {
	var s struct {
		Libbeat struct {
			Output struct {
				Write struct {
					Bytes int64 `json:"bytes"`
				} `json:"write"`
			} `json:"output"`
		} `json:"libbeat"`
	}
	err := benchbuild.GetJSON(url, &s)
	return s.Libbeat.Output.Write.Bytes, err
}

// processCPU is a process's user + system time so far, from /proc/<pid>/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
