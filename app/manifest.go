package app

import (
	"idbridge/app/connect"
	"idbridge/app/forge"
	"idbridge/config"
)

// ForgeManifest is manifest.yml for idbridge as a Connect-on-Forge app,
// generated from the very descriptor GET /atlassian-connect.json serves (the
// template rendered with the configured key and base URL), with the Forge
// app ID of configuration. products is "jira", "confluence" or "both".
func ForgeManifest(cfg config.Config, descriptorTemplate []byte, products string) ([]byte, error) {
	ps, err := forge.ParseProducts(products)
	if err != nil {
		return nil, err
	}
	descriptor, err := connect.RenderDescriptor(descriptorTemplate, cfg.AppKey, cfg.BaseURL.String())
	if err != nil {
		return nil, err
	}
	return forge.Generate(descriptor, forge.Options{AppID: cfg.ForgeAppID, Products: ps})
}

// ForgePlaceholderAppID is the app.id written while IDBRIDGE_FORGE_APP_ID is
// unset.
const ForgePlaceholderAppID = forge.PlaceholderAppID
