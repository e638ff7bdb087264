package models

// InstallEvent is the body of a Connect lifecycle callback (installed,
// uninstalled, enabled, disabled). Atlassian sends the same shape for all
// four; SharedSecret is present on installed only.
type InstallEvent struct {
	EventType    string
	Key          string
	SharedSecret string
	SiteFacts
}

// Caller is who made an authenticated request: the site it came from and,
// for context tokens, the Atlassian account ID of the user.
type Caller struct {
	Site      *Site
	AccountID string
}
