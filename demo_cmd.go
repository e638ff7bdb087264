package main

import (
	"errors"
	"flag"
	"fmt"

	"idbridge/app/demo"
)

const demoSummary = "Runs idbridge on loopback with a fresh embedded database and, in the same\n" +
	"process, a simulated Atlassian site (the stateful fakes the tests use) with\n" +
	"idbridge installed in it through the signed lifecycle, then prints the URL to\n" +
	"open: the site's admin page for idbridge, and a Simulated site page with the\n" +
	"site's users, groups and customers live, curl lines for SCIM and a link to the\n" +
	"help-center portal. Nothing leaves the machine; Ctrl-C ends it.\n\n" +
	"It reads only IDBRIDGE_ADDR (a loopback address; default " + demo.DefaultAddr + "),\n" +
	"IDBRIDGE_LOG_LEVEL and IDBRIDGE_LOG_FORMAT; it refuses any other address.\n" +
	"See docs/GETTING-STARTED.md for a real site."

func runDemo(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "keep the demo's database in this `directory` (default: a new temporary directory, removed at the end)")
	if code, ok := env.parseFlags(fs, args, demoSummary); !ok {
		return code
	}
	if err := demo.CheckAddr(addrOrDefault(env.getenv("IDBRIDGE_ADDR"))); err != nil {
		fmt.Fprintf(env.stderr, "idbridge demo: %v\n", err)
		return exitUsage
	}
	err := demo.Run(env.ctx, demo.Options{
		Getenv:             env.getenv,
		DataDir:            *dataDir,
		DescriptorTemplate: descriptorTemplate,
		Stdout:             env.stdout,
		Stderr:             env.stderr,
	})
	if errors.Is(err, demo.ErrNotLoopback) {
		fmt.Fprintf(env.stderr, "idbridge demo: %v\n", err)
		return exitUsage
	}
	if err != nil {
		return env.fail("demo", err)
	}
	return exitOK
}

func addrOrDefault(addr string) string {
	if addr == "" {
		return demo.DefaultAddr
	}
	return addr
}
