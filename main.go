// Command idbridge is the backend of an Atlassian cloud app for Jira and
// Confluence: Connect lifecycle and JWT, SCIM provisioning, customer SSO for
// Jira Service Management, and privacy tooling. See README.md.
package main

import (
	_ "embed"
	"os"
)

// descriptorTemplate is the Connect descriptor, rendered at start with the
// configured app key and base URL.
//
//go:embed atlassian-connect.json
var descriptorTemplate []byte

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
