// Command idbridge is the backend of an Atlassian cloud app for Jira and
// Confluence: Connect lifecycle and JWT, SCIM provisioning, customer SSO for
// Jira Service Management, and privacy tooling. See README.md.
package main

import (
	"os"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
