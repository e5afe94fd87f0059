package event

import (
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
)

const testConnectionString = "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0S2V5VmFsdWU="

func configFor(t *testing.T, settings map[string]any) (Config, error) {
	t.Helper()
	return configure(conf.MustNewConfigFrom(settings))
}

func mustConfig(t *testing.T, settings map[string]any) Config {
	t.Helper()
	c, err := configFor(t, settings)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConfigDefaults(t *testing.T) {
	c := mustConfig(t, map[string]any{
		"id": "events", "eventhub": "insights_defender_Streaming", "connection_string": testConnectionString,
		"storage_account": "contosocheckpoints", "storage_account_key": "a2V5",
	})
	if c.ConsumerGroup != "$Default" || c.AuthType != AuthConnectionString || c.CheckpointStore != StoreBlob ||
		c.ProcessorStartPosition != "earliest" || c.Transport != "amqp" || c.PartitionReceiveCount != 100 {
		t.Fatalf("defaults: %+v", c)
	}
	// Filebeat's azure-eventhub input derives filebeat-<eventhub>, underscores as hyphens.
	if c.StorageAccountContainer != "filebeat-insights-defender-streaming" {
		t.Fatalf("container %q", c.StorageAccountContainer)
	}
	if c.namespace != "contoso.servicebus.windows.net" {
		t.Fatalf("namespace %q", c.namespace)
	}
	if c.blobURL != "https://contosocheckpoints.blob.core.windows.net/filebeat-insights-defender-streaming" {
		t.Fatalf("blob URL %q", c.blobURL)
	}
}

// The Agent policy the reference integration renders for the event stream, as it is: a user
// can copy it.
func TestConfigAcceptsTheIntegrationsPolicy(t *testing.T) {
	c := mustConfig(t, map[string]any{
		"id": "from-agent", "auth_type": "connection_string", "authority_host": "https://login.microsoftonline.com",
		"connection_string": testConnectionString, "consumer_group": "$Default", "eventhub": "example",
		"publisher_pipeline.disable_host": true, "storage_account": "default",
		"storage_account_container": "azure-eventhub-input-example", "storage_account_key": "a2V5",
		"tags":                     []string{"preserve_original_event", "forwarded", "m365_defender-event"},
		"sanitize_options":         []string{"NEW_LINES", "SINGLE_QUOTES"},
		"processor_start_position": "latest", "transport": "websocket", "resource_manager_endpoint": "https://management.azure.com/",
	})
	if c.StorageAccountContainer != "azure-eventhub-input-example" || strings.Join(c.SanitizeOptions, ",") != "new_lines,single_quotes" {
		t.Fatalf("%+v", c)
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := configFor(t, map[string]any{
		"namespace": "Bad", "eventhub": "bad/hub", "consumer_group": " ", "auth_type": "password",
		"checkpoint_store": "disk", "cloud": "mars", "processor_start_position": "middle",
		"processor_update_interval": "10ms", "partition_receive_timeout": "1ms", "partition_receive_count": 0,
		"transport": "pigeon", "sanitize_options": []string{"new_lines", "emojis"},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, option := range []string{"id:", "namespace:", "eventhub:", "consumer_group:", "auth_type:", "checkpoint_store:", "cloud:",
		"processor_start_position:", "processor_update_interval:", "partition_receive_timeout:", "partition_receive_count:",
		"transport:", "sanitize_options:"} {
		if !strings.Contains(err.Error(), "\n  - "+option) {
			t.Errorf("no %s problem in:\n%v", option, err)
		}
	}
}

func TestConfigRequirementsPerAuthType(t *testing.T) {
	cases := []struct {
		name     string
		settings map[string]any
		want     []string // options named in the problems
	}{
		{"connection string without one", map[string]any{}, []string{"connection_string:", "storage_account:"}},
		{"connection string without storage key", map[string]any{"connection_string": testConnectionString, "storage_account": "acct1"},
			[]string{"storage_account_key:"}},
		{"client secret without credentials", map[string]any{"auth_type": "client_secret", "storage_account": "acct1"},
			[]string{"eventhub_namespace:", "tenant_id:", "client_id:", "client_secret:"}},
		{"client secret with a connection string", map[string]any{"auth_type": "client_secret", "connection_string": testConnectionString,
			"eventhub_namespace": "contoso", "tenant_id": "t", "client_id": "c", "client_secret": "s", "checkpoint_store": "local"},
			[]string{"connection_string:"}},
		{"certificate without a file", map[string]any{"auth_type": "certificate", "eventhub_namespace": "contoso", "tenant_id": "t",
			"client_id": "c", "checkpoint_store": "local"}, []string{"certificate:"}},
		{"authority host not https", map[string]any{"auth_type": "client_secret", "eventhub_namespace": "contoso", "tenant_id": "t",
			"client_id": "c", "client_secret": "s", "authority_host": "http://login.example", "checkpoint_store": "local"}, []string{"authority_host:"}},
		{"entity path of another hub", map[string]any{"connection_string": testConnectionString + ";EntityPath=other", "checkpoint_store": "local"},
			[]string{"connection_string:"}},
		{"container too long", map[string]any{"connection_string": testConnectionString, "storage_account": "acct1", "storage_account_key": "a2V5",
			"storage_account_container": strings.Repeat("a", 64)}, []string{"storage_account_container:"}},
		{"expiration below two update intervals", map[string]any{"connection_string": testConnectionString, "checkpoint_store": "local",
			"processor_update_interval": "10s", "partition_expiration_duration": "15s"}, []string{"partition_expiration_duration:"}},
		{"resource manager of another cloud", map[string]any{"connection_string": testConnectionString, "checkpoint_store": "local",
			"cloud": "gcc-high", "resource_manager_endpoint": "https://management.chinacloudapi.cn/"}, []string{"resource_manager_endpoint:"}},
		{"unknown resource manager", map[string]any{"connection_string": testConnectionString, "checkpoint_store": "local",
			"resource_manager_endpoint": "https://management.example/"}, []string{"resource_manager_endpoint:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			settings := map[string]any{"id": "x", "eventhub": "hub"}
			for k, v := range tc.settings {
				settings[k] = v
			}
			_, err := configFor(t, settings)
			if err == nil {
				t.Fatal("no error")
			}
			for _, option := range tc.want {
				if !strings.Contains(err.Error(), "\n  - "+option) {
					t.Errorf("no %s problem in:\n%v", option, err)
				}
			}
			if n := strings.Count(err.Error(), "\n  - "); n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

func TestConfigCloudsAndNamespaces(t *testing.T) {
	entra := func(extra map[string]any) Config {
		settings := map[string]any{"id": "x", "eventhub": "hub", "auth_type": "client_secret", "tenant_id": "t", "client_id": "c",
			"client_secret": "s", "storage_account": "acct1"}
		for k, v := range extra {
			settings[k] = v
		}
		return mustConfig(t, settings)
	}
	cases := []struct {
		extra             map[string]any
		namespace, blob   string
		authority         string
		credentialLoginOK bool
	}{
		{map[string]any{"eventhub_namespace": "contoso"}, "contoso.servicebus.windows.net",
			"https://acct1.blob.core.windows.net/filebeat-hub", "https://login.microsoftonline.com", true},
		{map[string]any{"eventhub_namespace": "sb://Contoso.servicebus.windows.net/"}, "contoso.servicebus.windows.net",
			"https://acct1.blob.core.windows.net/filebeat-hub", "https://login.microsoftonline.com", true},
		{map[string]any{"eventhub_namespace": "contoso", "cloud": "gcc-high"}, "contoso.servicebus.usgovcloudapi.net",
			"https://acct1.blob.core.usgovcloudapi.net/filebeat-hub", "https://login.microsoftonline.us", true},
		{map[string]any{"eventhub_namespace": "contoso", "resource_manager_endpoint": "https://management.chinacloudapi.cn/"}, "contoso.servicebus.chinacloudapi.cn",
			"https://acct1.blob.core.chinacloudapi.cn/filebeat-hub", "https://login.chinacloudapi.cn", true},
		{map[string]any{"eventhub_namespace": "contoso.servicebus.windows.net", "authority_host": "https://login.microsoftonline.us"},
			"contoso.servicebus.windows.net", "https://acct1.blob.core.windows.net/filebeat-hub", "https://login.microsoftonline.us", true},
	}
	for _, tc := range cases {
		c := entra(tc.extra)
		if c.namespace != tc.namespace || c.blobURL != tc.blob || c.credential.LoginURL != tc.authority {
			t.Errorf("%v: namespace %q blob %q authority %q, want %q %q %q", tc.extra, c.namespace, c.blobURL, c.credential.LoginURL, tc.namespace, tc.blob, tc.authority)
		}
	}
}

func TestConfigSwitchesAddTheirTags(t *testing.T) {
	c := mustConfig(t, map[string]any{"id": "x", "eventhub": "hub", "connection_string": testConnectionString, "checkpoint_store": "local",
		"tags": []string{"forwarded"}, "preserve_original_event": true, "preserve_duplicate_custom_fields": true})
	if strings.Join(c.Tags, ",") != "preserve_duplicate_custom_fields,preserve_original_event,forwarded" {
		t.Fatalf("tags %v", c.Tags)
	}
}

func TestConfigErrorsNeverCarrySecrets(t *testing.T) {
	const secret = "Zm9vYmFyU2VjcmV0S2V5"
	_, err := configFor(t, map[string]any{"id": "x", "eventhub": "hub",
		"connection_string":                 "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=" + secret + ";EntityPath=other",
		"storage_account_connection_string": "AccountName=x;AccountKey=" + secret + ";garbage",
	})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v carries the secret (or is missing)", err)
	}
}

func TestDefaultContainer(t *testing.T) {
	for hub, want := range map[string]string{
		"insights-logs-defender": "filebeat-insights-logs-defender",
		"m365_defender_events":   "filebeat-m365-defender-events",
		"Defender.Events":        "filebeat-defender-events",
	} {
		if got := DefaultContainer(hub); got != want {
			t.Errorf("DefaultContainer(%q) = %q, want %q", hub, got, want)
		}
	}
}
