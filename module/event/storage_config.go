package event

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// StorageInputType never changes: it is part of every stored cursor key.
const StorageInputType = "defender-event-storage"

// How the storage input authenticates to the storage account: its key (given alone or in a
// connection string), or an Entra ID identity holding the Storage Blob Data Reader role.
const (
	StorageAuthSharedKey        = "shared_key"
	StorageAuthConnectionString = "connection_string"
)

var storageAuthTypes = []string{StorageAuthSharedKey, StorageAuthConnectionString, AuthClientSecret, AuthCertificate, AuthManagedIdentity, AuthWorkloadIdentity}

// containerPrefix is how Defender names the container of each table it streams to a storage
// account: insights-logs-advancedhunting-<table in lower case>.
const containerPrefix = "insights-logs-advancedhunting-"

// roleBlobReader is the Azure RBAC role the storage input needs with Entra ID authentication.
const roleBlobReader = "Storage Blob Data Reader"

// StorageConfig is one storage input's options. The storage and Entra ID options carry the
// event input's names, so moving a configuration from one destination to the other is a matter
// of the type and the hub options.
type StorageConfig struct {
	inputkit.Common `config:",inline"`

	StorageAccount                 string `config:"storage_account"`
	StorageAccountKey              string `config:"storage_account_key"`
	StorageAccountConnectionString string `config:"storage_account_connection_string"`
	AuthType                       string `config:"auth_type"`
	EntraID                        `config:",inline"`
	Cloud                          string `config:"cloud"`

	// Tables are the tables to read, by name (DeviceProcessEvents) or container; empty: every
	// insights-logs-advancedhunting-* container, looked for again on every poll.
	Tables []string `config:"tables"`
	// StartPosition is where a fresh cursor starts: earliest, latest or an RFC 3339 time.
	StartPosition  string        `config:"start_position"`
	Interval       time.Duration `config:"interval"`
	MaxConcurrency int           `config:"max_concurrency"`

	PreserveOriginalEvent         bool `config:"preserve_original_event"`
	PreserveDuplicateCustomFields bool `config:"preserve_duplicate_custom_fields"`

	// Resolved by resolve.
	serviceURL string        // https://<account>.blob.<suffix>/ unless a connection string names it
	containers []string      // from tables; nil: discover
	startTime  time.Time     // start_position as a time; zero for earliest and latest
	credential msapi.Options // Entra ID credential, for the Entra auth types
}

func defaultStorageConfig() StorageConfig {
	return StorageConfig{
		Common:         inputkit.Common{Namespace: inputkit.DefaultNamespace},
		StartPosition:  startEarliest,
		Interval:       time.Minute,
		MaxConcurrency: 4,
	}
}

const maxStorageConcurrency = 64

var tableNamePattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// resolve applies defaults and returns every problem at once, each naming its option.
func (c *StorageConfig) resolve() error {
	var errs []error
	fail := func(option, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", option, fmt.Sprintf(format, args...)))
	}
	errs = append(errs, c.Common.Resolve()...)
	c.Tags = withSwitchTags(c.Tags, c.PreserveOriginalEvent, c.PreserveDuplicateCustomFields)

	cloud := cloudNamed(c.Cloud, fail)
	c.resolveStorageAuth(cloud, fail)

	c.containers = nil
	for i, t := range c.Tables {
		name, err := tableContainer(t)
		if err != nil {
			fail("tables", "entry %d: %v", i, err)
			continue
		}
		if !slices.Contains(c.containers, name) {
			c.containers = append(c.containers, name)
		}
	}

	switch c.StartPosition {
	case startEarliest, startLatest:
	default:
		t, err := time.Parse(time.RFC3339, c.StartPosition)
		if err != nil {
			fail("start_position", "%q is not %s, %s or an RFC 3339 time such as 2024-05-02T10:00:00Z", c.StartPosition, startEarliest, startLatest)
		}
		c.startTime = t.UTC()
	}
	if c.Interval < minInterval {
		fail("interval", "must be at least %s, got %s", minInterval, c.Interval)
	}
	if c.MaxConcurrency < 1 || c.MaxConcurrency > maxStorageConcurrency {
		fail("max_concurrency", "must be between 1 and %d, got %d", maxStorageConcurrency, c.MaxConcurrency)
	}
	return inputkit.Report(StorageInputType, c.ID, errs)
}

func (c *StorageConfig) resolveStorageAuth(cloud azureCloud, fail func(string, string, ...any)) {
	if c.AuthType == "" {
		switch {
		case c.StorageAccountConnectionString != "":
			c.AuthType = StorageAuthConnectionString
		case c.StorageAccountKey != "":
			c.AuthType = StorageAuthSharedKey
		default:
			c.AuthType = AuthClientSecret
		}
	}
	if !slices.Contains(storageAuthTypes, c.AuthType) {
		fail("auth_type", "%q is not one of %s", c.AuthType, strings.Join(storageAuthTypes, ", "))
		return
	}
	if c.AuthType != StorageAuthConnectionString && c.StorageAccountConnectionString != "" {
		fail("storage_account_connection_string", "is only used with auth_type: %s; remove it or change auth_type (%s)", StorageAuthConnectionString, c.AuthType)
	}
	if c.AuthType != StorageAuthSharedKey && c.StorageAccountKey != "" {
		fail("storage_account_key", "is only used with auth_type: %s; remove it or change auth_type (%s)", StorageAuthSharedKey, c.AuthType)
	}
	if c.AuthType == StorageAuthConnectionString {
		if c.StorageAccountConnectionString == "" {
			fail("storage_account_connection_string", "required with auth_type: %s", StorageAuthConnectionString)
		} else if _, err := service.NewClientFromConnectionString(c.StorageAccountConnectionString, nil); err != nil {
			// The SDK's own parser, no I/O; its error would quote the secret.
			fail("storage_account_connection_string", "not an Azure Storage connection string (DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=%s)", cloud.storage)
		}
		return
	}
	switch {
	case c.StorageAccount == "":
		fail("storage_account", "required: the name of the storage account Defender's Streaming API writes to (or set storage_account_connection_string)")
	case !storageAccountName.MatchString(c.StorageAccount):
		fail("storage_account", "%q is not a storage account name (3 to 24 lowercase letters and digits)", c.StorageAccount)
	default:
		c.serviceURL = fmt.Sprintf("https://%s.blob.%s/", c.StorageAccount, cloud.storage)
	}
	if c.AuthType == StorageAuthSharedKey {
		if c.StorageAccountKey == "" {
			fail("storage_account_key", "required with auth_type: %s", StorageAuthSharedKey)
		}
		return
	}
	c.credential = c.EntraID.credential(c.AuthType, cloud, fail)
}

// entraID reports whether the input signs in to the account with Entra ID (not with its key).
func (c *StorageConfig) entraID() bool {
	return c.AuthType != StorageAuthSharedKey && c.AuthType != StorageAuthConnectionString
}

// tableContainer names the container of a table given by name (DeviceProcessEvents,
// AdvancedHunting-DeviceProcessEvents) or as the container itself.
func tableContainer(table string) (string, error) {
	t := strings.TrimSpace(table)
	if strings.HasPrefix(strings.ToLower(t), containerPrefix) {
		t = t[len(containerPrefix):]
	} else if rest, ok := cutPrefixFold(t, "AdvancedHunting-"); ok {
		t = rest
	}
	if !tableNamePattern.MatchString(t) {
		return "", fmt.Errorf("%q is not an Advanced Hunting table (such as DeviceProcessEvents) or its container (%sdeviceprocessevents)", table, containerPrefix)
	}
	return containerPrefix + strings.ToLower(t), nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// account names the storage account the input reads, for the cursor key and the logs: the
// configured name, or the host (and, for an emulator, the path) of the connection string's
// blob endpoint.
func (c *StorageConfig) account() string {
	if c.AuthType != StorageAuthConnectionString {
		return c.StorageAccount
	}
	sc, err := service.NewClientFromConnectionString(c.StorageAccountConnectionString, nil)
	if err != nil {
		return ""
	}
	u, err := url.Parse(sc.URL())
	if err != nil {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(u.Host+u.Path, "/"))
}
