// Command handover-from-filebeat checks, with the real binaries, what the event dataset's page
// promises a user moving from Elastic's m365_defender integration: defenderbeat pointed at the
// storage account and consumer group that Filebeat's azure-eventhub input checkpointed to, with no
// container named by either, continues where Filebeat stopped. Nothing is lost; after a clean
// stop nothing is read twice, and after a killed Filebeat only what it had not yet checkpointed.
//
//	go run ./scripts/handover-from-filebeat                # Filebeat stopped cleanly (SIGINT)
//	go run ./scripts/handover-from-filebeat -stop kill     # Filebeat killed (SIGKILL)
//
// One Event Hubs fake (internal/eventhubfake, -partitions partitions) and one Azurite. First
// batch A is sent and Filebeat (x-pack/filebeat from the pinned beats module, processor_version
// v2, start at earliest) reads it to its file output; it is stopped once its output has
// acknowledged every record, or killed once it has acknowledged half of them. Then batch B is sent and defenderbeat starts with the same connection
// settings, also at earliest, so that checkpoints it failed to find would show as A read again.
// When its output has written B and nothing more for -quiet, it is stopped and both outputs are
// compared by the unique marker each record carries. The script exits 1 when a record is lost,
// or when one is read twice after a clean stop. Linux only; needs Azurite (npm ci at the module
// root). Without -filebeat it builds x-pack/filebeat (several minutes). -control checkpoints
// defenderbeat elsewhere: the check must then fail, which shows that it can.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/benchbuild"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

// hubName is a hub name as Defender's Streaming API setup suggests one; its default checkpoint
// container is filebeat-<hub>, which both beats must derive alike.
const hubName = "defender-streaming"

type options struct {
	filebeat, defenderbeat, azurite string
	stop                            string
	partitions, messages, perMsg    int
	quiet, timeout                  time.Duration
	keep                            bool
	control                         bool
}

func main() {
	var o options
	flag.StringVar(&o.filebeat, "filebeat", "", "Filebeat binary (default: build x-pack/filebeat from the pinned beats module)")
	flag.StringVar(&o.defenderbeat, "defenderbeat", "", "defenderbeat binary (default: build it from the module root)")
	flag.StringVar(&o.azurite, "azurite", "", "azurite-blob binary (default: node_modules/.bin/azurite-blob at the module root)")
	flag.StringVar(&o.stop, "stop", "interrupt", "how Filebeat stops: interrupt (SIGINT, a clean stop) or kill (SIGKILL)")
	flag.IntVar(&o.partitions, "partitions", 4, "partitions of the hub")
	flag.IntVar(&o.messages, "messages", 25, "messages per partition in each batch")
	flag.IntVar(&o.perMsg, "per-message", 20, "records per message")
	flag.DurationVar(&o.quiet, "quiet", 15*time.Second, "how long defenderbeat's output must stay unchanged after batch B before it is stopped")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a beat after this long")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs, outputs)")
	flag.BoolVar(&o.control, "control", false, "the negative control: defenderbeat checkpoints in a container of its own, so it must read batch A again and the check must fail")
	flag.Parse()
	if o.stop != "interrupt" && o.stop != "kill" {
		fmt.Fprintln(os.Stderr, "handover-from-filebeat: -stop must be interrupt or kill")
		os.Exit(2)
	}
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "handover-from-filebeat:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(o options) (bool, error) {
	work, cleanup, err := benchbuild.Workdir("handover-from-filebeat-", o.keep)
	if err != nil {
		return false, err
	}
	defer cleanup()
	if o.filebeat == "" {
		if o.filebeat, err = benchbuild.Filebeat(work); err != nil {
			return false, err
		}
	}
	if o.defenderbeat == "" {
		if o.defenderbeat, err = benchbuild.Defenderbeat(work); err != nil {
			return false, err
		}
	}
	az, err := azuritetest.Run(o.azurite)
	if err != nil {
		return false, err
	}
	defer az.Stop()
	hub, err := eventhubfake.Start(eventhubfake.Config{
		Hubs: []eventhubfake.HubConfig{{Name: hubName, Partitions: o.partitions}},
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "fake: "+format+"\n", args...) },
	})
	if err != nil {
		return false, err
	}
	defer hub.Close()

	// The options both inputs share, under the integration's names; no container, so that each
	// derives its own default.
	shared := map[string]any{
		"eventhub":                          hubName,
		"consumer_group":                    "$Default",
		"connection_string":                 hub.ConnectionString(""),
		"storage_account":                   azuritetest.AccountName,
		"storage_account_connection_string": az.ConnectionString(),
		"processor_start_position":          "earliest",
		"processor_update_interval":         "1s",
		"partition_receive_timeout":         "2s",
	}

	batchA, err := send(hub, "a", o)
	if err != nil {
		return false, err
	}
	fb := map[string]any{"type": "azure-eventhub", "id": "m365-defender-event", "processor_version": "v2"}
	fbDir := filepath.Join(work, "filebeat")
	filebeat, err := startBeat(o.filebeat, "filebeat", fbDir, merge(shared, fb))
	if err != nil {
		return false, err
	}
	// A clean stop comes after Filebeat has written all of batch A; a kill in the middle of it,
	// as a crash would.
	sig, until := syscall.SIGINT, len(batchA)
	if o.stop == "kill" {
		sig, until = syscall.SIGKILL, len(batchA)/2
	}
	if err := filebeat.waitAcked(until, o.timeout); err != nil {
		filebeat.stop(syscall.SIGKILL)
		return false, fmt.Errorf("filebeat: %w", err)
	}
	filebeat.stop(sig)
	containers, err := listContainers(az)
	if err != nil {
		return false, err
	}
	fmt.Fprintf(os.Stderr, "filebeat was stopped (%s) after writing at least %d records; checkpoint containers: %v\n", o.stop, until, containers)

	batchB, err := send(hub, "b", o)
	if err != nil {
		return false, err
	}
	if err := stillHeld(hub, o); err != nil {
		return false, err
	}
	db := map[string]any{"type": "defender-event", "id": "m365-defender-event", "preserve_original_event": true}
	if o.control {
		db["storage_account_container"] = "defenderbeat-control"
	}
	dbDir := filepath.Join(work, "defenderbeat")
	defenderbeat, err := startBeat(o.defenderbeat, "defenderbeat", dbDir, merge(shared, db))
	if err != nil {
		return false, err
	}
	if err := defenderbeat.waitAcked(len(batchB), o.timeout); err != nil {
		defenderbeat.stop(syscall.SIGKILL)
		return false, fmt.Errorf("defenderbeat: %w", err)
	}
	if err := defenderbeat.waitQuiet(o.quiet); err != nil {
		defenderbeat.stop(syscall.SIGKILL)
		return false, fmt.Errorf("defenderbeat: %w", err)
	}
	defenderbeat.stop(syscall.SIGINT)

	fbMarkers, err := markers(filepath.Join(fbDir, "out"), "message")
	if err != nil {
		return false, fmt.Errorf("filebeat's output: %w", err)
	}
	dbMarkers, err := markers(filepath.Join(dbDir, "out"), "event.original")
	if err != nil {
		return false, fmt.Errorf("defenderbeat's output: %w", err)
	}
	return verdict(o, batchA, batchB, fbMarkers, dbMarkers), nil
}

// verdict prints what each beat wrote of each batch and says whether the handover held.
func verdict(o options, batchA, batchB []string, fb, db map[string]int) bool {
	count := func(batch []string, seen map[string]int) (got, twice int) {
		for _, m := range batch {
			if seen[m] > 0 {
				got++
			}
			if seen[m] > 1 {
				twice++
			}
		}
		return got, twice
	}
	fbA, fbTwice := count(batchA, fb)
	dbA, _ := count(batchA, db)
	dbB, dbTwice := count(batchB, db)
	both := 0 // records of batch A both beats wrote: read twice across the handover
	for _, m := range batchA {
		if fb[m] > 0 && db[m] > 0 {
			both++
		}
	}
	var lost []string
	for _, m := range append(append([]string(nil), batchA...), batchB...) {
		if fb[m] == 0 && db[m] == 0 {
			lost = append(lost, m)
		}
	}
	sort.Strings(lost)
	fmt.Printf("Filebeat (%s) wrote %d of batch A's %d records (%d more than once).\n", map[string]string{"interrupt": "stopped with SIGINT", "kill": "killed with SIGKILL"}[o.stop], fbA, len(batchA), fbTwice)
	fmt.Printf("defenderbeat then wrote %d of batch A's records, %d of them written by Filebeat too, and %d of batch B's %d (%d more than once).\n", dbA, both, dbB, len(batchB), dbTwice)
	fmt.Printf("Lost: %d records.\n", len(lost))
	ok := len(lost) == 0
	if len(lost) > 0 {
		fmt.Printf("First lost: %v\n", lost[:min(len(lost), 10)])
	}
	if o.stop == "interrupt" && (both > 0 || fbTwice > 0 || dbTwice > 0) {
		fmt.Println("FAIL: records were read twice after a clean stop.")
		ok = false
	}
	if ok {
		fmt.Println("OK: defenderbeat continued from Filebeat's checkpoints.")
	} else {
		fmt.Println("FAIL")
	}
	return ok
}

// send puts o.messages messages of o.perMsg records on every partition. Each record carries a
// unique marker, "<batch>-<partition>-<message>-<record>", in a column of its own.
func send(hub *eventhubfake.Server, batch string, o options) ([]string, error) {
	var sent []string
	for p := 0; p < o.partitions; p++ {
		for m := 0; m < o.messages; m++ {
			var recs []any
			for r := 0; r < o.perMsg; r++ {
				marker := fmt.Sprintf("%s-%d-%d-%d", batch, p, m, r)
				sent = append(sent, marker)
				recs = append(recs, map[string]any{
					"time": time.Now().UTC().Format(time.RFC3339Nano), "tenantId": "11111111-2222-3333-4444-555555555555",
					"operationName": "Publish", "category": "AdvancedHunting-DeviceProcessEvents",
					"properties": map[string]any{
						"Timestamp": time.Now().UTC().Format(time.RFC3339Nano), "DeviceName": "host-1",
						"ActionType": "ProcessCreated", "Marker": marker,
					},
				})
			}
			body, err := json.Marshal(map[string]any{"records": recs})
			if err != nil {
				return nil, err
			}
			if err := hub.Send(hubName, strconv.Itoa(p), body); err != nil {
				return nil, err
			}
		}
	}
	return sent, nil
}

// stillHeld checks that every partition still holds batch A from its first message: a
// defenderbeat that ignored Filebeat's checkpoints would then read it again, which the verdict
// would see.
func stillHeld(hub *eventhubfake.Server, o options) error {
	for p := 0; p < o.partitions; p++ {
		recs, err := hub.Records(hubName, strconv.Itoa(p))
		if err != nil {
			return err
		}
		first := fmt.Sprintf(`"Marker":"a-%d-0-0"`, p)
		if len(recs) != 2*o.messages || !strings.Contains(string(recs[0].Body), first) {
			return fmt.Errorf("partition %d no longer holds batch A (%d messages): the check would prove nothing", p, len(recs))
		}
	}
	return nil
}

// beat is one running beat process.
type beat struct{ *benchbuild.Beat }

func startBeat(binary, name, dir string, input map[string]any) (*beat, error) {
	b, err := benchbuild.StartBeat(binary, name, dir, map[string]any{
		name + ".inputs": []any{input},
		"output.file":    map[string]any{"path": filepath.Join(dir, "out"), "filename": "documents", "rotate_every_kb": 512000},
	}, nil)
	if err != nil {
		return nil, err
	}
	return &beat{b}, nil
}

// waitAcked waits until the beat's output has acknowledged at least n documents.
func (b *beat) waitAcked(n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got int64
	for {
		if acked, err := benchbuild.Acked(b.Stats); err == nil {
			got = acked
			if got >= int64(n) {
				return nil
			}
		}
		select {
		case <-b.Exited:
			return fmt.Errorf("exited after %d documents; see %s", got, b.Log)
		case <-ctx.Done():
			return fmt.Errorf("%d of %d documents within %s; see %s", got, n, timeout, b.Log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitQuiet waits until the acknowledged count has not changed for d: whatever the beat was
// going to read again has been read.
func (b *beat) waitQuiet(d time.Duration) error {
	last, since := int64(-1), time.Now()
	for time.Since(since) < d {
		acked, err := benchbuild.Acked(b.Stats)
		if err != nil {
			return err
		}
		if acked != last {
			last, since = acked, time.Now()
		}
		select {
		case <-b.Exited:
			return fmt.Errorf("exited; see %s", b.Log)
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

func (b *beat) stop(sig syscall.Signal) { b.Stop(sig, 30*time.Second) }

// markers counts the records' markers in a file output's documents, read from the raw record
// at field (dotted path) of each document.
func markers(dir, field string) (map[string]int, error) {
	files, _ := filepath.Glob(filepath.Join(dir, "documents*"))
	if len(files) == 0 {
		return nil, errors.New("no output file in " + dir)
	}
	seen := map[string]int{}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			var doc map[string]any
			if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
				_ = f.Close()
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			raw, _ := lookup(doc, field).(string)
			var rec struct {
				Properties struct {
					Marker string `json:"Marker"`
				} `json:"properties"`
			}
			if json.Unmarshal([]byte(raw), &rec) != nil || rec.Properties.Marker == "" {
				_ = f.Close()
				return nil, fmt.Errorf("%s: a document without a record at %s: %.300s", name, field, sc.Text())
			}
			seen[rec.Properties.Marker]++
		}
		_ = f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return seen, nil
}

func lookup(doc map[string]any, path string) any {
	var v any = doc
	for _, key := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[key]
	}
	return v
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// listContainers names the containers in Azurite's account: the checkpoint container Filebeat
// derived, which defenderbeat must find by itself.
func listContainers(az *azuritetest.Azurite) ([]string, error) {
	client, err := service.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		return nil, err
	}
	var names []string
	pager := client.NewListContainersPager(nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			return nil, err
		}
		for _, c := range page.ContainerItems {
			names = append(names, *c.Name)
		}
	}
	return names, nil
}
