//go:build tooldeps

// This file pins modules that packages being written now will import, so
// go.mod stays stable while several people work; it is never built.
package main

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/scim2/filter-parser/v2"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/oauth2/clientcredentials"
)
