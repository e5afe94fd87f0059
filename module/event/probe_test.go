package event

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

func probeWith(t *testing.T, settings map[string]any) error {
	t.Helper()
	c, err := configure(conf.MustNewConfigFrom(settings))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return probe(ctx, c, testTuning(), testLogger(t))
}

// `defenderbeat test credentials` names what to fix: the key, the hub, the consumer group, the
// storage key, the integration's container; and passes a working configuration, whose
// container it creates.
func TestProbeNamesWhatToFix(t *testing.T) {
	az := azuritetest.Shared(t)
	const key = "c2VjcmV0LWtleQ=="
	hub := startHub(t, eventhubfake.Config{SASKeyName: "listen", SASKey: key})
	base := func(extra map[string]any) map[string]any {
		return hubSettings(t, hub, az, extra)
	}
	if err := probeWith(t, base(nil)); err != nil {
		t.Fatalf("a working configuration: %v", err)
	}
	cc, err := container.NewClientFromConnectionString(az.ConnectionString(), testContainer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	pager := cc.NewListBlobsFlatPager(nil)
	page, err := pager.NextPage(context.Background())
	if err != nil || len(page.Segment.BlobItems) != 0 {
		t.Fatalf("the probe's container is missing or keeps its test blob: %v %v", err, page.Segment.BlobItems)
	}

	wrongKey := strings.Replace(hub.ConnectionString(""), key, "d3Jvbmc=", 1)
	wrongStorage := strings.Replace(az.ConnectionString(), azuritetest.AccountKey, "d3Jvbmd3cm9uZ3dyb25n", 1)
	cases := []struct {
		name     string
		settings map[string]any
		want     []string
	}{
		{"wrong key", base(map[string]any{"connection_string": wrongKey}), []string{"its key is wrong or rotated", "Listen claim"}},
		{"unknown hub", base(map[string]any{"eventhub": "nohub"}), []string{`event hub "nohub"`, "does not exist"}},
		{"unknown consumer group", base(map[string]any{"consumer_group": "nope"}), []string{`consumer_group "nope" does not exist`}},
		{"wrong storage key", base(map[string]any{"storage_account_connection_string": wrongStorage}), []string{"refused the key", "storage_account_key"}},
		{"both", base(map[string]any{"connection_string": wrongKey, "storage_account_connection_string": wrongStorage}),
			[]string{"Listen claim", "refused the key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := probeWith(t, tc.settings)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%q missing from:\n%v", want, err)
				}
			}
			if strings.Contains(err.Error(), "d3Jvbmc") || strings.Contains(err.Error(), azuritetest.AccountKey) {
				t.Errorf("a key leaked into the error: %v", err)
			}
		})
	}
}

// A user moving from the integration whose Agent kept checkpoints in the container the
// integration names is told to name it, instead of silently starting over in a new one.
func TestProbePointsAtTheIntegrationsContainer(t *testing.T) {
	az := azuritetest.Shared(t)
	hub := startHub(t, eventhubfake.Config{Hubs: []eventhubfake.HubConfig{{Name: "probe_hub", Partitions: 1}}})
	integration, err := container.NewClientFromConnectionString(az.ConnectionString(), "azure-eventhub-input-probe-hub", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := integration.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	settings := hubSettings(t, hub, az, map[string]any{"eventhub": "probe_hub"})
	delete(settings, "storage_account_container") // the default: filebeat-probe-hub
	err = probeWith(t, settings)
	if err == nil || !strings.Contains(err.Error(), "set storage_account_container: azure-eventhub-input-probe-hub") {
		t.Fatalf("err = %v", err)
	}
}
