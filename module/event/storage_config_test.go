package event

import (
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
)

func storageConfigErr(t *testing.T, settings map[string]any) string {
	t.Helper()
	err := StorageDataset.Validate(conf.MustNewConfigFrom(settings))
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestStorageConfigReportsEveryProblem(t *testing.T) {
	msg := storageConfigErr(t, map[string]any{
		"id": "s", "storage_account": "Not_An_Account", "storage_account_key": "k", "auth_type": "client_secret",
		"tables": []string{"DeviceEvents", "bad table"}, "start_position": "yesterday", "interval": "1ms",
		"max_concurrency": 0, "eventhub": "x",
	})
	for _, want := range []string{
		"eventhub: unknown option",
		"storage_account: \"Not_An_Account\" is not a storage account name",
		"storage_account_key: is only used with auth_type: shared_key",
		"tables: entry 1:",
		"start_position: \"yesterday\" is not earliest, latest or an RFC 3339 time",
		"interval: must be at least",
		"max_concurrency: must be between 1 and 64",
		"tenant_id",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q:\n%s", want, msg)
		}
	}
}

func TestStorageConfigAuthTypes(t *testing.T) {
	for name, c := range map[string]struct {
		settings map[string]any
		want     string // "" for valid
	}{
		"key":                   {map[string]any{"storage_account": "contoso", "storage_account_key": "a2V5"}, ""},
		"connection string":     {map[string]any{"storage_account_connection_string": "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey=a2V5;EndpointSuffix=core.windows.net"}, ""},
		"bad connection string": {map[string]any{"storage_account_connection_string": "AccountKey=secretvalue"}, "not an Azure Storage connection string"},
		"entra":                 {map[string]any{"storage_account": "contoso", "tenant_id": "t", "client_id": "c", "client_secret": "s"}, ""},
		"managed identity":      {map[string]any{"storage_account": "contoso", "auth_type": "managed_identity"}, ""},
		"no account":            {map[string]any{"storage_account_key": "a2V5"}, "storage_account: required"},
		"unknown auth":          {map[string]any{"storage_account": "contoso", "auth_type": "sas"}, `auth_type: "sas" is not one of`},
	} {
		t.Run(name, func(t *testing.T) {
			s := map[string]any{"id": "s"}
			for k, v := range c.settings {
				s[k] = v
			}
			msg := storageConfigErr(t, s)
			if c.want == "" && msg != "" || c.want != "" && !strings.Contains(msg, c.want) {
				t.Fatalf("error %q, want %q", msg, c.want)
			}
			if strings.Contains(msg, "secretvalue") {
				t.Fatalf("the error quotes the secret: %s", msg)
			}
		})
	}
}

func TestStorageConfigDefaultsAndCloud(t *testing.T) {
	c, err := configureStorage(conf.MustNewConfigFrom(map[string]any{
		"id": "s", "storage_account": "contoso", "storage_account_key": "a2V5", "cloud": "gcc-high",
		"tables": []string{"DeviceEvents", "insights-logs-advancedhunting-deviceevents"}, "preserve_original_event": true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.serviceURL != "https://contoso.blob.core.usgovcloudapi.net/" || c.AuthType != StorageAuthSharedKey {
		t.Fatalf("service URL %q, auth %q", c.serviceURL, c.AuthType)
	}
	if len(c.containers) != 1 || c.StartPosition != startEarliest || c.MaxConcurrency != 4 || c.Interval.String() != "1m0s" {
		t.Fatalf("resolved %+v", c)
	}
	if len(c.Tags) != 1 || c.Tags[0] != "preserve_original_event" {
		t.Fatalf("tags %v", c.Tags)
	}
	if c.account() != "contoso" {
		t.Fatalf("account %q", c.account())
	}
}

func confFrom(m map[string]any) *conf.C { return conf.MustNewConfigFrom(m) }
