package event

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/go-amqp"
	"github.com/elastic/elastic-agent-libs/logp"
	"golang.org/x/net/websocket"

	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// The Azure RBAC roles this input needs with Entra ID authentication.
const (
	roleReceiver    = "Azure Event Hubs Data Receiver"
	roleBlobWriter  = "Storage Blob Data Contributor"
	applicationName = "defenderbeat"
)

// clients are the Azure SDK clients of one input: the hub's consumer client and, for
// checkpoint_store: blob, the checkpoint container.
type clients struct {
	consumer  *azeventhubs.ConsumerClient
	container *container.Client      // nil with checkpoint_store: local
	cred      azcore.TokenCredential // nil with auth_type: connection_string
}

func (c *clients) close(ctx context.Context) {
	if c.consumer != nil {
		_ = c.consumer.Close(ctx)
	}
}

func newClients(cfg *Config, tune tuning, log *logp.Logger) (*clients, error) {
	var cred azcore.TokenCredential
	if cfg.AuthType != AuthConnectionString {
		o := cfg.credential
		if tune.credential != nil {
			tune.credential(&o)
		}
		var err error
		if cred, err = msapi.NewTokenCredential(o, log); err != nil {
			return nil, err
		}
	}
	consumer, err := newConsumerClient(cfg, tune, cred)
	if err != nil {
		return nil, err
	}
	out := &clients{consumer: consumer, cred: cred}
	if cfg.CheckpointStore == StoreBlob {
		if out.container, err = newContainerClient(cfg, tune, cred); err != nil {
			out.close(context.Background())
			return nil, err
		}
	}
	return out, nil
}

func newConsumerClient(cfg *Config, tune tuning, cred azcore.TokenCredential) (*azeventhubs.ConsumerClient, error) {
	opts := &azeventhubs.ConsumerClientOptions{
		ApplicationID: applicationName,
		InstanceID:    tune.instanceID,
		RetryOptions:  tune.retry,
		TLSConfig:     tune.tls,
	}
	if cfg.Transport == transportWebSocket {
		opts.NewWebSocketConn = webSocketDialer(tune.tls)
	}
	if cfg.AuthType == AuthConnectionString {
		hub := cfg.EventHub
		if props, err := azeventhubs.ParseConnectionString(cfg.ConnectionString); err == nil && props.EntityPath != nil {
			hub = "" // the SDK takes the hub from EntityPath and refuses it twice
		}
		cc, err := azeventhubs.NewConsumerClientFromConnectionString(cfg.ConnectionString, hub, cfg.ConsumerGroup, opts)
		if err != nil {
			return nil, fmt.Errorf("connection_string: %w", err)
		}
		return cc, nil
	}
	return azeventhubs.NewConsumerClient(cfg.namespace, cfg.EventHub, cfg.ConsumerGroup, cred, opts)
}

// webSocketDialer carries AMQP over WebSockets on port 443 (wss://<namespace>/$servicebus/
// websocket), for networks that only let HTTPS out.
func webSocketDialer(tlsConfig *tls.Config) func(context.Context, azeventhubs.WebSocketConnParams) (net.Conn, error) {
	return func(ctx context.Context, args azeventhubs.WebSocketConnParams) (net.Conn, error) {
		u, err := url.Parse(args.Host)
		if err != nil {
			return nil, err
		}
		wsc, err := websocket.NewConfig(args.Host, "https://"+u.Host)
		if err != nil {
			return nil, err
		}
		wsc.Protocol = []string{"AMQPWSB10"}
		wsc.TlsConfig = tlsConfig
		conn, err := wsc.DialContext(ctx)
		if err != nil {
			return nil, err
		}
		conn.PayloadType = websocket.BinaryFrame
		return conn, nil
	}
}

func newContainerClient(cfg *Config, tune tuning, cred azcore.TokenCredential) (*container.Client, error) {
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Telemetry: policy.TelemetryOptions{ApplicationID: applicationName},
		Retry:     tune.blobRetry,
		Transport: tune.blobTransport,
	}}
	switch {
	case cfg.StorageAccountConnectionString != "":
		cc, err := container.NewClientFromConnectionString(cfg.StorageAccountConnectionString, cfg.StorageAccountContainer, opts)
		if err != nil {
			return nil, errors.New("storage_account_connection_string: not an Azure Storage connection string")
		}
		return cc, nil
	case cfg.StorageAccountKey != "":
		key, err := container.NewSharedKeyCredential(cfg.StorageAccount, cfg.StorageAccountKey)
		if err != nil {
			return nil, errors.New("storage_account_key: not a storage account key (base64)")
		}
		return container.NewClientWithSharedKeyCredential(cfg.blobURL, key, opts)
	default:
		return container.NewClient(cfg.blobURL, cred, opts)
	}
}

// ensureContainer creates the checkpoint container if it is missing: the SDK's checkpoint
// store expects it to exist.
func ensureContainer(ctx context.Context, cc *container.Client) (created bool, err error) {
	_, err = cc.GetProperties(ctx, nil)
	if err == nil {
		return false, nil
	}
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return false, err
	}
	if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return false, err
	}
	return true, nil
}

// isOwnershipLost reports the error a partition reader gets when another instance took its
// partition over: normal while instances balance.
func isOwnershipLost(err error) bool {
	var ehErr *azeventhubs.Error
	return errors.As(err, &ehErr) && ehErr.Code == azeventhubs.ErrorCodeOwnershipLost
}

// explainEventHubs turns an Event Hubs failure into what to fix; "" when it has no advice.
func explainEventHubs(err error, cfg *Config) string {
	var (
		ehErr   *azeventhubs.Error
		amqpErr *amqp.Error
		dnsErr  *net.DNSError
		tokErr  *msapi.TokenError
	)
	switch {
	case errors.As(err, &tokErr):
		return msapi.Explain(err)
	case errors.As(err, &ehErr) && ehErr.Code == azeventhubs.ErrorCodeUnauthorizedAccess,
		errors.As(err, &amqpErr) && amqpErr.Condition == amqp.ErrCondUnauthorizedAccess,
		strings.Contains(err.Error(), "status code 401"): // a refused claim, as the SDK reports it
		if cfg.AuthType == AuthConnectionString {
			return fmt.Sprintf("Event Hubs refused the connection string: its key is wrong or rotated, or its shared access policy lacks the Listen claim on event hub %q", cfg.EventHub)
		}
		return fmt.Sprintf("the identity (client_id %s) lacks the %s role on event hub %q or its namespace %s", orUnknown(cfg.ClientID), roleReceiver, cfg.EventHub, cfg.namespace)
	case errors.As(err, &amqpErr) && amqpErr.Condition == amqp.ErrCondNotFound:
		desc := strings.ToLower(amqpErr.Description)
		if strings.Contains(desc, "consumer") || strings.Contains(desc, "group") {
			return fmt.Sprintf("consumer_group %q does not exist on event hub %q: create it, or use %s", cfg.ConsumerGroup, cfg.EventHub, azeventhubs.DefaultConsumerGroup)
		}
		return fmt.Sprintf("event hub %q (or consumer group %q) does not exist in namespace %s: check eventhub and the namespace", cfg.EventHub, cfg.ConsumerGroup, cfg.namespace)
	case strings.Contains(err.Error(), "status code 404"):
		// Management and claim requests answer an unknown hub with 404.
		return fmt.Sprintf("event hub %q does not exist in namespace %s: check eventhub and the namespace", cfg.EventHub, cfg.namespace)
	case errors.As(err, &dnsErr), strings.Contains(err.Error(), "no such host"):
		return fmt.Sprintf("the namespace %s does not resolve: check eventhub_namespace or the connection string's Endpoint (and cloud)", cfg.namespace)
	case strings.Contains(err.Error(), "connection refused"), strings.Contains(err.Error(), "i/o timeout"):
		port := "5671 (AMQP)"
		if cfg.Transport == transportWebSocket {
			port = "443 (AMQP over WebSockets)"
		}
		return fmt.Sprintf("cannot reach %s on port %s: check the namespace and the firewall, or try transport: websocket", cfg.namespace, port)
	}
	return ""
}

// needsChange reports a failure that only a change of configuration or on the Azure side fixes
// (a key, a role, a name); network trouble and outages may pass by themselves.
func needsChange(err error) bool {
	var (
		ehErr   *azeventhubs.Error
		amqpErr *amqp.Error
		tokErr  *msapi.TokenError
	)
	text := err.Error()
	switch {
	case errors.As(err, &tokErr):
		return tokErr.StatusCode != 0 // Entra ID answered, and refused
	case errors.As(err, &ehErr) && ehErr.Code == azeventhubs.ErrorCodeUnauthorizedAccess,
		errors.As(err, &amqpErr) && (amqpErr.Condition == amqp.ErrCondUnauthorizedAccess || amqpErr.Condition == amqp.ErrCondNotFound),
		strings.Contains(text, "status code 401"), strings.Contains(text, "status code 404"):
		return true
	}
	return bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationPermissionMismatch,
		bloberror.AuthorizationFailure, bloberror.InsufficientAccountPermissions) ||
		strings.Contains(text, "failed to authenticate the request")
}

// explainStorage turns a checkpoint-container failure into what to fix; "" when it has no advice.
func explainStorage(err error, cfg *Config) string {
	var (
		dnsErr *net.DNSError
		tokErr *msapi.TokenError
	)
	where := fmt.Sprintf("container %q of storage account %q", cfg.StorageAccountContainer, cfg.StorageAccount)
	if cfg.StorageAccount == "" {
		where = fmt.Sprintf("container %q of the storage_account_connection_string's account", cfg.StorageAccountContainer)
	}
	entraID := cfg.AuthType != AuthConnectionString && cfg.StorageAccountKey == "" && cfg.StorageAccountConnectionString == ""
	switch {
	case errors.As(err, &tokErr):
		return msapi.Explain(err)
	case entraID && refusedToken(err):
		return tokenAdvice(err, cfg.TenantID)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed), strings.Contains(err.Error(), "failed to authenticate the request"):
		// Azure answers a wrong key with AuthenticationFailed (Azurite with AuthorizationFailure).
		return fmt.Sprintf("the storage account refused the key: check storage_account_key (or the AccountKey of storage_account_connection_string) for %s", where)
	case bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure, bloberror.InsufficientAccountPermissions):
		if entraID {
			return fmt.Sprintf("the identity (client_id %s) lacks the %s role on %s (or the account's firewall refuses this host)", orUnknown(cfg.ClientID), roleBlobWriter, where)
		}
		return fmt.Sprintf("access to %s is refused (the account's firewall, or a key or SAS without write permission)", where)
	case errors.As(err, &dnsErr), strings.Contains(err.Error(), "no such host"):
		return fmt.Sprintf("the storage account does not resolve: check storage_account (and cloud) for %s", where)
	}
	return ""
}

// refusedToken reports a storage account's refusal of the bearer token itself (not of the
// identity's role): Azure Storage answers 401 InvalidAuthenticationInfo, Azurite 403
// AuthenticationFailed, both "Server failed to authenticate the request".
func refusedToken(err error) bool {
	return bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.InvalidAuthenticationInfo) ||
		strings.Contains(err.Error(), "failed to authenticate the request")
}

// authenticationDetail is the reason a storage service gives for refusing a request (its
// AuthenticationErrorDetail: an expired token, another tenant's issuer, another audience).
var authenticationDetail = regexp.MustCompile(`<AuthenticationErrorDetail>([^<]{1,300})</AuthenticationErrorDetail>`)

// tokenAdvice says what to fix when a storage account refuses the identity's Entra ID token.
func tokenAdvice(err error, tenantID string) string {
	why := ""
	if m := authenticationDetail.FindStringSubmatch(err.Error()); m != nil {
		why = " (" + strings.TrimSpace(m[1]) + ")"
	}
	tenant := "tenant_id's tenant"
	if tenantID != "" {
		tenant = "tenant " + tenantID
	}
	return fmt.Sprintf("the storage account refused the Entra ID token%s: the account must belong to %s in the configured cloud, and this host's clock must be right", why, tenant)
}

func orUnknown(s string) string {
	if s == "" {
		return "of the managed identity"
	}
	return s
}

// shortStorageError reduces an Azure Storage failure to one line (the SDK's text carries the
// whole XML answer).
func shortStorageError(err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	where := ""
	if re.RawResponse != nil && re.RawResponse.Request != nil {
		u := re.RawResponse.Request.URL
		where = re.RawResponse.Request.Method + " " + u.Scheme + "://" + u.Host + u.EscapedPath() + ": "
	}
	return &shortError{msg: fmt.Sprintf("%sHTTP %d %s", where, re.StatusCode, re.ErrorCode), err: err}
}

// shortError shows one line instead of the SDK's multi-line response dump, and keeps the SDK's
// error underneath, so that a refused key or role is still recognised as such (FAILED).
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// withAdvice appends explain's advice to err's text.
func withAdvice(err error, advice string) error {
	if advice == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, advice)
}
