package event

import (
	"cmp"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/elastic/beats/v7/libbeat/common/cfgtype"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Authentication: the reference integration's connection_string and client_secret, plus the
// other Entra ID credentials every defenderbeat input offers.
const (
	AuthConnectionString = "connection_string"
	AuthClientSecret     = msapi.AuthClientSecret
	AuthCertificate      = msapi.AuthCertificate
	AuthManagedIdentity  = msapi.AuthManagedIdentity
	AuthWorkloadIdentity = msapi.AuthWorkloadIdentity
)

var authTypes = []string{AuthConnectionString, AuthClientSecret, AuthCertificate, AuthManagedIdentity, AuthWorkloadIdentity}

// Where partition checkpoints live.
const (
	// StoreBlob shares checkpoints and partition ownership between instances through an Azure
	// Storage container, in the layout Filebeat's azure-eventhub input uses.
	StoreBlob = "blob"
	// StoreLocal keeps checkpoints in the beat's own registry: one instance, no storage account.
	StoreLocal = "local"
)

const (
	startEarliest      = "earliest"
	startLatest        = "latest"
	transportAMQP      = "amqp"
	transportWebSocket = "websocket"
	sanitizeNewLines   = "new_lines"
	sanitizeQuotes     = "single_quotes"
)

// defaultContainerPrefix is the prefix Filebeat's azure-eventhub input derives the checkpoint
// container name with, so both read and write the same container by default.
const defaultContainerPrefix = "filebeat-"

// azureCloud holds the DNS suffixes and authority of one Azure cloud.
type azureCloud struct {
	eventHubs       string // namespace suffix: <namespace>.<eventHubs>
	storage         string // blob endpoint suffix: <account>.blob.<storage>
	authority       string
	resourceManager string // the host resource_manager_endpoint names it by
	msapiCloud      string // the cloud the shared credential code knows it as
}

var (
	publicCloud = azureCloud{"servicebus.windows.net", "core.windows.net", "https://login.microsoftonline.com", "management.azure.com", msapi.CloudGlobal}
	usGovCloud  = azureCloud{"servicebus.usgovcloudapi.net", "core.usgovcloudapi.net", "https://login.microsoftonline.us", "management.usgovcloudapi.net", msapi.CloudGCCHigh}
	chinaCloud  = azureCloud{"servicebus.chinacloudapi.cn", "core.chinacloudapi.cn", "https://login.chinacloudapi.cn", "management.chinacloudapi.cn", msapi.CloudGlobal}

	// Defender's US Government offerings: GCC runs in Azure commercial, GCC High and DoD in
	// Azure Government.
	clouds = map[string]azureCloud{
		msapi.CloudGlobal:  publicCloud,
		msapi.CloudGCC:     publicCloud,
		msapi.CloudGCCHigh: usGovCloud,
		msapi.CloudDoD:     usGovCloud,
		"china":            chinaCloud,
	}
	cloudNames = []string{msapi.CloudGlobal, msapi.CloudGCC, msapi.CloudGCCHigh, msapi.CloudDoD, "china"}
)

// Config is one event input's options. The Event Hubs and storage options carry the reference
// integration's names (Filebeat's azure-eventhub input), so its configuration can be copied.
type Config struct {
	inputkit.Common `config:",inline"`

	EventHub      string `config:"eventhub"`
	ConsumerGroup string `config:"consumer_group"`

	AuthType          string `config:"auth_type"`
	ConnectionString  string `config:"connection_string"`
	EventHubNamespace string `config:"eventhub_namespace"`
	EntraID           `config:",inline"`

	CheckpointStore                string `config:"checkpoint_store"`
	StorageAccount                 string `config:"storage_account"`
	StorageAccountKey              string `config:"storage_account_key"`
	StorageAccountConnectionString string `config:"storage_account_connection_string"`
	StorageAccountContainer        string `config:"storage_account_container"`
	ResourceManagerEndpoint        string `config:"resource_manager_endpoint"`
	Cloud                          string `config:"cloud"`

	ProcessorStartPosition      string           `config:"processor_start_position"`
	ProcessorUpdateInterval     time.Duration    `config:"processor_update_interval"`
	PartitionReceiveTimeout     time.Duration    `config:"partition_receive_timeout"`
	PartitionReceiveCount       int              `config:"partition_receive_count"`
	PartitionReceiveBytes       cfgtype.ByteSize `config:"partition_receive_bytes"`
	PartitionExpirationDuration time.Duration    `config:"partition_expiration_duration"`
	Transport                   string           `config:"transport"`
	SanitizeOptions             []string         `config:"sanitize_options"`
	// MigrateCheckpoint carries the legacy processor's checkpoints into the current layout.
	MigrateCheckpoint bool `config:"migrate_checkpoint"`

	// The integration's switches; each adds the tag of its name, which drives the behaviour.
	PreserveOriginalEvent         bool `config:"preserve_original_event"`
	PreserveDuplicateCustomFields bool `config:"preserve_duplicate_custom_fields"`

	// Resolved by resolve.
	namespace  string        // the Event Hubs namespace host (with a port for a local emulator)
	cloud      azureCloud    // DNS suffixes and authority
	credential msapi.Options // Entra ID credential, for every auth_type but connection_string
	blobURL    string        // the container URL, for a storage account reached by name
}

func defaultConfig() Config {
	return Config{
		Common:                      inputkit.Common{Namespace: inputkit.DefaultNamespace},
		ConsumerGroup:               azeventhubs.DefaultConsumerGroup,
		AuthType:                    AuthConnectionString,
		CheckpointStore:             StoreBlob,
		ProcessorStartPosition:      startEarliest,
		ProcessorUpdateInterval:     10 * time.Second,
		PartitionReceiveTimeout:     5 * time.Second,
		PartitionReceiveCount:       100,
		PartitionReceiveBytes:       2 << 20,
		PartitionExpirationDuration: time.Minute,
		Transport:                   transportAMQP,
		MigrateCheckpoint:           true,
	}
}

const (
	minInterval       = 100 * time.Millisecond
	maxReceiveCount   = 5000
	minReceiveBytes   = 64 << 10
	maxReceiveBytes   = 1 << 30
	maxContainerChars = 63
)

var (
	eventHubNamePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$`)
	hostPattern          = regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]+)?$`)
	storageAccountName   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerNamePattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9])*$`)
)

// resolve applies defaults and returns every problem at once, each naming its option.
func (c *Config) resolve() error {
	var errs []error
	fail := func(option, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", option, fmt.Sprintf(format, args...)))
	}
	errs = append(errs, c.Common.Resolve()...)
	c.addSwitchTags()

	if c.EventHub == "" {
		fail("eventhub", "required: the name of the event hub the Streaming API writes to")
	} else if !eventHubNamePattern.MatchString(c.EventHub) {
		fail("eventhub", "%q is not an event hub name (letters, digits, '.', '-' and '_')", c.EventHub)
	}
	if strings.TrimSpace(c.ConsumerGroup) == "" {
		fail("consumer_group", "must not be empty (the default is %s)", azeventhubs.DefaultConsumerGroup)
	}
	c.resolveCloud(fail)
	c.resolveAuth(fail)
	c.resolveCheckpointStore(fail)

	if !slices.Contains([]string{startEarliest, startLatest}, c.ProcessorStartPosition) {
		fail("processor_start_position", "%q is not one of %s, %s", c.ProcessorStartPosition, startEarliest, startLatest)
	}
	if c.ProcessorUpdateInterval < minInterval {
		fail("processor_update_interval", "must be at least %s, got %s", minInterval, c.ProcessorUpdateInterval)
	}
	if c.PartitionReceiveTimeout < minInterval {
		fail("partition_receive_timeout", "must be at least %s, got %s", minInterval, c.PartitionReceiveTimeout)
	}
	if c.PartitionReceiveCount < 1 || c.PartitionReceiveCount > maxReceiveCount {
		fail("partition_receive_count", "must be between 1 and %d, got %d", maxReceiveCount, c.PartitionReceiveCount)
	}
	if c.PartitionReceiveBytes < minReceiveBytes || c.PartitionReceiveBytes > maxReceiveBytes {
		fail("partition_receive_bytes", "must be between 64KiB and 1GiB, got %d bytes", int64(c.PartitionReceiveBytes))
	}
	// Owners renew their claims every update interval (with up to 30% jitter); a claim must
	// outlive a late renewal or live instances would steal partitions from each other.
	if c.PartitionExpirationDuration < 2*c.ProcessorUpdateInterval {
		fail("partition_expiration_duration", "must be at least twice processor_update_interval (%s), got %s", c.ProcessorUpdateInterval, c.PartitionExpirationDuration)
	}
	if !slices.Contains([]string{transportAMQP, transportWebSocket}, c.Transport) {
		fail("transport", "%q is not one of %s, %s", c.Transport, transportAMQP, transportWebSocket)
	}
	for i, opt := range c.SanitizeOptions {
		norm := strings.ToLower(strings.TrimSpace(opt))
		if _, ok := SanitizerNames[norm]; !ok {
			fail("sanitize_options", "entry %d %q is not one of %s, %s", i, opt, sanitizeNewLines, sanitizeQuotes)
		}
		c.SanitizeOptions[i] = norm
	}
	return inputkit.Report(InputType, c.ID, errs)
}

// addSwitchTags turns the integration's boolean switches into the tags that drive them.
func (c *Config) addSwitchTags() {
	c.Tags = withSwitchTags(c.Tags, c.PreserveOriginalEvent, c.PreserveDuplicateCustomFields)
}

// withSwitchTags adds the tag of each switch that is on, first, unless tags already hold it.
func withSwitchTags(tags []string, preserveOriginal, preserveDuplicates bool) []string {
	for _, sw := range []struct {
		on  bool
		tag string
	}{{preserveOriginal, transform.TagPreserveOriginal}, {preserveDuplicates, transform.TagPreserveDuplicateCustom}} {
		if sw.on && !slices.Contains(tags, sw.tag) {
			tags = append([]string{sw.tag}, tags...)
		}
	}
	return tags
}

// cloudNamed is the cloud the `cloud` option names (global when empty).
func cloudNamed(name string, fail func(string, string, ...any)) azureCloud {
	cloud, ok := clouds[cmp.Or(name, msapi.CloudGlobal)]
	if !ok {
		fail("cloud", "%q is not one of %s", name, strings.Join(cloudNames, ", "))
		return publicCloud
	}
	return cloud
}

func (c *Config) resolveCloud(fail func(string, string, ...any)) {
	cloud := cloudNamed(c.Cloud, fail)
	if c.ResourceManagerEndpoint != "" {
		u, err := url.Parse(c.ResourceManagerEndpoint)
		host := ""
		if err == nil {
			host = strings.ToLower(u.Hostname())
		}
		byEndpoint, known := azureCloud{}, false
		for _, candidate := range []azureCloud{publicCloud, usGovCloud, chinaCloud} {
			if host == candidate.resourceManager {
				byEndpoint, known = candidate, true
			}
		}
		switch {
		case !known:
			fail("resource_manager_endpoint", "%q is not an Azure Resource Manager endpoint this input knows (https://%s, https://%s, https://%s); set cloud instead",
				c.ResourceManagerEndpoint, publicCloud.resourceManager, usGovCloud.resourceManager, chinaCloud.resourceManager)
		case c.Cloud != "" && byEndpoint != cloud:
			fail("resource_manager_endpoint", "%q names another Azure cloud than cloud: %s; keep one of them", c.ResourceManagerEndpoint, c.Cloud)
		default:
			cloud = byEndpoint
		}
	}
	c.cloud = cloud
}

func (c *Config) resolveAuth(fail func(string, string, ...any)) {
	if !slices.Contains(authTypes, c.AuthType) {
		fail("auth_type", "%q is not one of %s", c.AuthType, strings.Join(authTypes, ", "))
		return
	}
	if c.AuthType == AuthConnectionString {
		c.resolveConnectionString(fail)
		return
	}
	if c.ConnectionString != "" {
		fail("connection_string", "is only used with auth_type: %s; remove it or change auth_type (%s)", AuthConnectionString, c.AuthType)
	}
	c.resolveNamespace(fail)

	c.credential = c.EntraID.credential(c.AuthType, c.cloud, fail)
}

// EntraID are the Microsoft Entra ID sign-in options of both event inputs (Event Hubs and the
// storage destination), as the integration names them.
type EntraID struct {
	TenantID                string `config:"tenant_id"`
	ClientID                string `config:"client_id"`
	ClientSecret            string `config:"client_secret"`
	AuthorityHost           string `config:"authority_host"`
	Certificate             string `config:"certificate"`
	CertificatePassword     string `config:"certificate_password"`
	ManagedIdentityClientID string `config:"managed_identity_client_id"`
	FederatedTokenFile      string `config:"federated_token_file"`
}

// credential resolves the options into the shared credential code's, reporting each problem
// under this input's option names.
func (e EntraID) credential(authType string, cloud azureCloud, fail func(string, string, ...any)) msapi.Options {
	o := msapi.DefaultOptions()
	o.AuthType = authType
	o.TenantID, o.ClientID, o.ClientSecret = e.TenantID, e.ClientID, e.ClientSecret
	o.Certificate, o.CertificatePassword = e.Certificate, e.CertificatePassword
	o.ManagedIdentityClientID, o.FederatedTokenFile = e.ManagedIdentityClientID, e.FederatedTokenFile
	o.Cloud = cloud.msapiCloud
	o.LoginURL = e.AuthorityHost
	if o.LoginURL == "" {
		o.LoginURL = cloud.authority
	}
	for _, err := range o.ResolveCredential() {
		// The shared code names the authority login_url; these inputs call it authority_host.
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "login_url:"); ok {
			msg = "authority_host:" + rest
		}
		option, detail, _ := strings.Cut(msg, ": ")
		fail(option, "%s", detail)
	}
	return o
}

func (c *Config) resolveConnectionString(fail func(string, string, ...any)) {
	if c.ConnectionString == "" {
		fail("connection_string", "required when auth_type is %s: the Event Hubs namespace's (or the hub's) connection string with a Listen claim", AuthConnectionString)
		return
	}
	props, err := azeventhubs.ParseConnectionString(c.ConnectionString)
	if err != nil {
		fail("connection_string", "not an Event Hubs connection string (Endpoint=sb://<namespace>.%s/;SharedAccessKeyName=…;SharedAccessKey=…): %v", c.cloud.eventHubs, err)
		return
	}
	if props.EntityPath != nil && c.EventHub != "" {
		if !strings.EqualFold(*props.EntityPath, c.EventHub) {
			fail("connection_string", "its EntityPath %q does not match eventhub %q", *props.EntityPath, c.EventHub)
		}
		// The SDK names checkpoints after the EntityPath as written: so does everything else.
		c.EventHub = *props.EntityPath
	}
	c.namespace = props.FullyQualifiedNamespace
	if c.EventHubNamespace != "" {
		if ns := normalizeNamespace(c.EventHubNamespace, c.cloud); !strings.EqualFold(ns, c.namespace) {
			fail("eventhub_namespace", "%q does not match the connection string's namespace %q; keep one of them", c.EventHubNamespace, c.namespace)
		}
	}
}

func (c *Config) resolveNamespace(fail func(string, string, ...any)) {
	if c.EventHubNamespace == "" {
		fail("eventhub_namespace", "required when auth_type is %s: the namespace's host name, e.g. mynamespace.%s", c.AuthType, c.cloud.eventHubs)
		return
	}
	ns := normalizeNamespace(c.EventHubNamespace, c.cloud)
	if !hostPattern.MatchString(ns) {
		fail("eventhub_namespace", "%q is not a host name such as mynamespace.%s", c.EventHubNamespace, c.cloud.eventHubs)
		return
	}
	c.namespace = ns
}

// normalizeNamespace accepts the namespace as its host name, an sb:// or https:// URL of it, or
// its bare name, which gets the cloud's suffix.
func normalizeNamespace(raw string, cloud azureCloud) string {
	ns := strings.TrimSpace(raw)
	for _, scheme := range []string{"sb://", "amqps://", "https://"} {
		if len(ns) > len(scheme) && strings.EqualFold(ns[:len(scheme)], scheme) {
			ns = ns[len(scheme):]
		}
	}
	ns = strings.TrimSuffix(ns, "/")
	if ns != "" && !strings.Contains(ns, ".") && !strings.Contains(ns, ":") {
		ns += "." + cloud.eventHubs
	}
	return strings.ToLower(ns)
}

func (c *Config) resolveCheckpointStore(fail func(string, string, ...any)) {
	switch c.CheckpointStore {
	case StoreLocal:
		return
	case StoreBlob:
	default:
		fail("checkpoint_store", "%q is not one of %s, %s", c.CheckpointStore, StoreBlob, StoreLocal)
		return
	}
	if c.StorageAccountContainer == "" && c.EventHub != "" {
		c.StorageAccountContainer = DefaultContainer(c.EventHub)
	}
	if c.StorageAccountContainer != "" && (len(c.StorageAccountContainer) < 3 || len(c.StorageAccountContainer) > maxContainerChars ||
		!containerNamePattern.MatchString(c.StorageAccountContainer)) {
		fail("storage_account_container", "%q is not a valid container name: 3 to %d lowercase letters, digits and single hyphens, starting and ending with a letter or digit",
			c.StorageAccountContainer, maxContainerChars)
	}

	switch {
	case c.StorageAccountConnectionString != "":
		// Checked by building a client: the connection string's own parser, no I/O.
		if _, err := container.NewClientFromConnectionString(c.StorageAccountConnectionString, "probe", nil); err != nil {
			fail("storage_account_connection_string", "not an Azure Storage connection string (DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=%s)", c.cloud.storage)
		}
	case c.StorageAccount == "":
		fail("storage_account", "required with checkpoint_store: %s (or set storage_account_connection_string), or use checkpoint_store: %s for a single instance without a storage account",
			StoreBlob, StoreLocal)
	case !storageAccountName.MatchString(c.StorageAccount):
		fail("storage_account", "%q is not a storage account name (3 to 24 lowercase letters and digits)", c.StorageAccount)
	case c.StorageAccountKey == "" && c.AuthType == AuthConnectionString:
		fail("storage_account_key", "required with auth_type: %s and checkpoint_store: %s (or set storage_account_connection_string)", AuthConnectionString, StoreBlob)
	default:
		c.blobURL = fmt.Sprintf("https://%s.blob.%s/%s", c.StorageAccount, c.cloud.storage, c.StorageAccountContainer)
	}
}

// DefaultContainer is the checkpoint container Filebeat's azure-eventhub input derives for a hub
// when none is configured: "filebeat-<eventhub>" with underscores as hyphens (containers allow
// neither). Names it would reject (capitals, dots) are lowered and hyphenated too.
func DefaultContainer(eventHub string) string {
	name := strings.ReplaceAll(defaultContainerPrefix+eventHub, "_", "-")
	return strings.ToLower(strings.ReplaceAll(name, ".", "-"))
}
