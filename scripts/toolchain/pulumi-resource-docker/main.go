// pulumi-resource-docker, bridged from kreuzwerker/terraform-provider-docker the way pulumi-docker's
// release bridges it, for machines that cannot download the released plugin. Tokens and the two
// field names pulumi-docker overrides match its schema, so its Python SDK talks to this plugin.
package main

import (
	"unicode"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"

	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// version is the pulumi-docker release whose Python SDK the program pins (set with -ldflags -X).
var version = "0.0.0-dev"

func resource(name string) tokens.Type {
	module := string(unicode.ToLower(rune(name[0]))) + name[1:]
	return tokens.Type("docker:index/" + module + ":" + name)
}

func providerInfo() tfbridge.ProviderInfo {
	return tfbridge.ProviderInfo{
		P:       shimv2.NewProvider(shim.NewProvider(version)),
		Name:    "docker",
		Version: version,
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_container": {
				Tok: resource("Container"),
				// Containers have fixed names: the old one must go before its replacement starts.
				DeleteBeforeReplace: true,
				Fields: map[string]*tfbridge.SchemaInfo{
					"command":           {Name: "command"},
					"networks_advanced": {Name: "networksAdvanced"},
				},
			},
			"docker_image": {
				Tok:    resource("RemoteImage"),
				Fields: map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}},
			},
			"docker_network": {Tok: resource("Network")},
			"docker_volume":  {Tok: resource("Volume")},
		},
	}
}

func main() {
	tfbridge.Main("docker", version, providerInfo(), nil)
}
