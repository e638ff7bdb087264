package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// allowedInternal lists, per package, the idbridge packages it may import
// (docs/ARCHITECTURE.md, "Dependency direction"). A package missing here
// falls under its parent's rule: app/<feature> → featureRule.
var allowedInternal = map[string][]string{
	"idbridge":        {"idbridge/app", "idbridge/config", "idbridge/app/demo"},
	"idbridge/app":    {"*"}, // the composition root wires everything
	"idbridge/config": {},
	"idbridge/models": {},
	// The HTTP layer speaks SCIM through the protocol package's request
	// and answer values (never the store-backed service).
	"idbridge/handlers":    {"idbridge/models", "idbridge/app/scim"},
	"idbridge/app/secret":  {},
	"idbridge/app/connect": {"idbridge/models"},
	// Forge: the manifest generator and the Forge invocation token.
	"idbridge/app/forge": {"idbridge/models"},
	// The SCIM protocol (schemas, filters, PATCH, projection, rendering),
	// free of the database: the store-backed service is app/provisioning.
	"idbridge/app/scim":      {"idbridge/models"},
	"idbridge/app/atlassian": {"idbridge/app/connect", "idbridge/models"},
	"idbridge/app/store":     {"idbridge/app/secret", "idbridge/models"},
	"idbridge/e2e":           {}, // browser tests only; their imports are test imports
	"idbridge/app/store/storetest": {
		"idbridge/app/store", "idbridge/app/secret", "idbridge/models",
	},
	// Test doubles for app's and e2e's tests; independent of the code under
	// test, so nothing from idbridge but the fake Atlassian's query string
	// hash.
	"idbridge/app/apptest": {"idbridge/app/fakeatlassian"},
	// The stateful fake of Atlassian; independent of the code under test too.
	"idbridge/app/fakeatlassian": {},
	// Identity providers (OIDC, SAML) for tests, bench and the demo;
	// independent of the code under test too.
	"idbridge/app/fakeidp": {},
	// `idbridge demo`: the whole App beside the fakes, wired like a test
	// harness. Only main imports it, and only for the demo subcommand.
	"idbridge/app/demo": {"idbridge/app", "idbridge/config", "idbridge/app/fakeatlassian", "idbridge/app/fakeidp"},
}

// testOnly packages are test support: only _test.go files may import them.
var testOnly = []string{"idbridge/app/apptest"}

// fakeOnly packages are fakes of the outside world: tests may import them
// (any _test.go file), and so may the packages named in fakeImporters (the
// load harnesses under bench/ and the demo subcommand's package), but never
// the code that serve runs.
var fakeOnly = []string{"idbridge/app/fakeatlassian", "idbridge/app/fakeidp"}

// fakeImporters are the non-test packages (by prefix) that may import a
// fakeOnly package; apptest is test support itself (testOnly).
var fakeImporters = []string{"idbridge/bench/", "idbridge/app/demo", "idbridge/app/apptest"}

// featureRule is what app/<feature> packages (sites, provisioning, sso, …)
// may import; they never import each other, except the audit log, and
// they may use the protocol packages (connect, scim).
var featureRule = []string{
	"idbridge/app/store", "idbridge/app/atlassian", "idbridge/app/connect",
	"idbridge/app/audit", "idbridge/app/secret", "idbridge/models", "idbridge/app/scim",
	"idbridge/app/forge",
}

// onlyImporter names third-party modules that exactly one package may
// import, so a framework never leaks across a boundary.
var onlyImporter = map[string][]string{
	"github.com/gin-gonic/gin": {"idbridge/handlers"},
	"gorm.io/":                 {"idbridge/app/store"},
	"github.com/ncruces/":      {"idbridge/app/store"},
	"github.com/jackc/pgx":     {"idbridge/app/store", "idbridge/app/store/storetest"},
}

// stdlibOnly packages may depend (transitively) on nothing outside the
// standard library, except the one library named.
var stdlibOnly = map[string]string{
	"idbridge/models":            "",
	"idbridge/config":            "",
	"idbridge/app/secret":        "",
	"idbridge/app/connect":       "github.com/golang-jwt/jwt/v5",
	"idbridge/app/apptest":       "github.com/golang-jwt/jwt/v5",
	"idbridge/app/fakeatlassian": "github.com/golang-jwt/jwt/v5",
}

// sqliteEngines are the SQLite engines Go can link, by the import path
// prefix of their packages (glebarez/go-sqlite is a driver over
// modernc.org/sqlite/lib). The server binary links exactly one: a GORM dialector that
// brings its own driver links a second (megabytes: docs/PERFORMANCE.md,
// "The SQLite engine"), which is why app/store has a dialector of its own.
// bench/sqlite-engines swaps in the other candidates, so the rule names no
// particular one.
var sqliteEngines = []string{"github.com/ncruces/go-sqlite3", "modernc.org/sqlite", "github.com/mattn/go-sqlite3"}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestDependencyDirection(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}}|{{join .Imports ","}}`, "./...")
	if len(lines) < 5 {
		t.Fatalf("go list found only %d packages", len(lines))
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, "|")
		rule, ok := allowedInternal[pkg]
		if !ok && strings.HasPrefix(pkg, "idbridge/bench/") {
			// Load harnesses boot the whole app, like main.
			rule, ok = []string{"*"}, true
		}
		if !ok {
			if strings.HasPrefix(pkg, "idbridge/app/") && strings.Count(pkg, "/") == 2 {
				rule = featureRule
			} else {
				t.Errorf("package %s has no dependency rule: add it to allowedInternal and docs/ARCHITECTURE.md", pkg)
				continue
			}
		}
		for _, imp := range strings.Split(imports, ",") {
			if imp == "" {
				continue
			}
			if strings.HasPrefix(imp, "idbridge") && !slices.Contains(rule, "*") && !slices.Contains(rule, imp) && imp != pkg {
				t.Errorf("%s imports %s, which the dependency rule forbids", pkg, imp)
			}
			if slices.Contains(fakeOnly, imp) && !slices.ContainsFunc(fakeImporters, func(p string) bool { return strings.HasPrefix(pkg, p) }) {
				t.Errorf("%s imports %s, a fake of Atlassian: only tests, bench/ and the demo may import it", pkg, imp)
			}
			if slices.Contains(testOnly, imp) {
				t.Errorf("%s imports %s, which is test support: import it only from _test.go files", pkg, imp)
			}
			for prefix, owners := range onlyImporter {
				if strings.HasPrefix(imp, prefix) && !slices.Contains(owners, pkg) {
					t.Errorf("%s imports %s; only %v may", pkg, imp, owners)
				}
			}
		}
	}
}

func TestStdlibOnlyPackages(t *testing.T) {
	for pkg, allowed := range stdlibOnly {
		deps := goList(t, "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{end}}`, pkg)
		for _, d := range deps {
			if d == "" || d == pkg || (allowed != "" && strings.HasPrefix(d, allowed)) {
				continue
			}
			if strings.HasPrefix(d, "idbridge/") && slices.Contains(allowedInternal[pkg], d) {
				continue
			}
			t.Errorf("%s depends on %s; it may use only the standard library%s", pkg, d, orLib(allowed))
		}
	}
}

func orLib(lib string) string {
	if lib == "" {
		return ""
	}
	return " and " + lib
}

func TestOneSQLiteEngine(t *testing.T) {
	var linked []string
	for _, d := range goList(t, "-deps", "-f", `{{if not .Standard}}{{.ImportPath}}{{end}}`, ".") {
		for _, e := range sqliteEngines {
			if strings.HasPrefix(d, e) && !slices.Contains(linked, e) {
				linked = append(linked, e)
			}
		}
	}
	if len(linked) != 1 {
		t.Errorf("the binary links the SQLite engines %v; it should link exactly one (a GORM dialector with a driver of its own brings another)", linked)
	}
}
