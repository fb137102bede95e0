// Package shim exposes the upstream Terraform provider, whose constructor is internal to its module.
// Its import path lies under the upstream module's, which is what Go's internal-package rule asks.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"

	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider is kreuzwerker/terraform-provider-docker's SDKv2 provider.
func NewProvider(version string) *schema.Provider {
	return provider.New(version)()
}
