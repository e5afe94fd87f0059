//go:build deps

// Package deps pins modules that packages under construction will import.
package deps

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/azcore"
	_ "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	_ "github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2/checkpoints"
	_ "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	_ "github.com/Azure/go-amqp"
	_ "github.com/elastic/beats/v7/dev-tools/mage"
	_ "github.com/elastic/beats/v7/filebeat/channel"
	_ "github.com/elastic/beats/v7/filebeat/input/v2"
	_ "github.com/elastic/beats/v7/filebeat/input/v2/compat"
	_ "github.com/elastic/beats/v7/filebeat/input/v2/input-cursor"
	_ "github.com/elastic/beats/v7/filebeat/input/v2/input-stateless"
	_ "github.com/elastic/beats/v7/libbeat/asset"
	_ "github.com/elastic/beats/v7/libbeat/cfgfile"
	_ "github.com/elastic/beats/v7/libbeat/cmd"
	_ "github.com/elastic/beats/v7/libbeat/cmd/instance"
	_ "github.com/elastic/beats/v7/libbeat/monitoring/inputmon"
	_ "github.com/elastic/beats/v7/libbeat/publisher/pipetool"
	_ "github.com/elastic/beats/v7/libbeat/statestore"
	_ "github.com/elastic/beats/v7/libbeat/statestore/backend/memlog"
	_ "github.com/elastic/beats/v7/x-pack/libbeat/management"
	_ "github.com/elastic/elastic-agent-client/v7/pkg/client/mock"
	_ "github.com/elastic/elastic-agent-libs/config"
	_ "github.com/elastic/go-concert/unison"
	_ "github.com/magefile/mage/mg"
	_ "github.com/spf13/cobra"
)
