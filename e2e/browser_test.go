package e2e_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"idbridge/app/apptest"
)

// allJSURL is Atlassian's Connect JavaScript API, which the admin page
// loads. The browser never reaches Atlassian's CDN in a test: the tab
// answers this URL with testdata/all.js, the iframe half of the Connect
// bridge (see that file).
const allJSURL = "https://connect-cdn.atl-paas.net/all.js"

func newLogger(w *apptest.LockedBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// chromiumPath finds Chromium. Without it a developer's run skips the
// browser test in one line; with CI=true it fails, since CI installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("IDBRIDGE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed, but CI=true: the browser test must run in CI (.ci/run installs it: apt-get install -y chromium)")
	}
	t.Skip("chromium not found: skipping the browser test (apt-get install chromium, or set IDBRIDGE_CHROMIUM)")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile, stopped when
// the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	profile, err := os.MkdirTemp("", "idbridge-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	var out apptest.LockedBuffer
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("font-render-hinting", "none"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&out),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v\n%s", path, err, out.String())
	}
	return ctx
}

// consoleEntry is one message of the page's console.
type consoleEntry struct {
	phase string
	msg   chromedp.ConsoleMessage
}

// tab is one browser tab on the fake Jira's host page, with the admin page
// in its iframe.
type tab struct {
	t     *testing.T
	ctx   context.Context
	stack *stack
	shots string // screenshot directory

	mu      sync.Mutex
	console []consoleEntry
	phase   string // the test's current step, for console messages
}

// newTab opens a tab whose requests for all.js get the stub, and whose
// console is recorded from the start.
func newTab(t *testing.T, browser context.Context, s *stack, stub []byte) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx, stack: s, shots: artifactDir(t), phase: "load"}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, consoleEntry{tb.phase, m})
			tb.mu.Unlock()
		}
	}()
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if ev.Request.URL == allJSURL {
				_, _ = chromedp.Call(ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{
					RequestID:    ev.RequestID,
					ResponseCode: 200,
					ResponseHeaders: []*fetch.HeaderEntry{
						{Name: "Content-Type", Value: "application/javascript; charset=utf-8"},
						{Name: "Access-Control-Allow-Origin", Value: "*"},
					},
					Body: stub,
				})
				continue
			}
			// Nothing else may leave the machine.
			_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "https://*"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			tb.screenshot("failure")
			tb.logConsole()
		}
	})
	return tb
}

// step names what the test does now, for console messages.
func (tb *tab) step(name string) {
	tb.mu.Lock()
	tb.phase = name
	tb.mu.Unlock()
}

// rejected matches Chrome's console line for an admin API call that
// answered 400 (invalid), 412 (precondition), 429 (a refresh within its
// cooldown) or 503 (Jira did not answer): Chrome logs every failed fetch,
// and the bad input steps make some fail on purpose.
var rejected = regexp.MustCompile(`status of (400|412|429|503)\b`)

// consoleErrors returns the console's errors and exceptions, except the
// rejections of admin API calls during the bad input steps.
func (tb *tab) consoleErrors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, e := range tb.console {
		m := e.msg
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException {
			continue
		}
		if m.Source == "network" && (strings.Contains(m.URL, "/api/admin/") || strings.Contains(m.URL, "/portal/")) && strings.HasPrefix(e.phase, "bad input") && rejected.MatchString(m.Text) {
			continue
		}
		out = append(out, fmt.Sprintf("[%s] %s %s: %s (%s:%d)", e.phase, m.Type, m.Source, m.Text, m.URL, m.Line+1))
	}
	return out
}

func (tb *tab) logConsole() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.console {
		tb.t.Logf("console [%s] %s %s: %s (%s:%d)", e.phase, e.msg.Type, e.msg.Source, e.msg.Text, e.msg.URL, e.msg.Line+1)
	}
}

// artifactDir is where screenshots go: $IDBRIDGE_TEST_ARTIFACTS/<test>
// when set, else the test's artifact directory (kept under -outputdir with
// go test -artifacts). On failure the paths are logged, and screenshots in
// a directory the test would delete are copied to one that stays.
func artifactDir(t *testing.T) string {
	t.Helper()
	if root := os.Getenv("IDBRIDGE_TEST_ARTIFACTS"); root != "" {
		dir := filepath.Join(root, strings.NewReplacer("/", "__", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := t.ArtifactDir()
	if f := flag.Lookup("test.artifacts"); f == nil || f.Value.String() != "true" {
		t.Cleanup(func() {
			if !t.Failed() {
				return
			}
			keep, err := os.MkdirTemp("", "idbridge-e2e-screenshots-")
			if err != nil {
				return
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
					_ = os.WriteFile(filepath.Join(keep, e.Name()), b, 0o644)
				}
			}
			t.Logf("screenshots kept in %s", keep)
		})
	}
	return dir
}

// run runs actions on the tab and fails the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", what, err)
	}
}

// frameID is the frame of the admin page's iframe.
func (tb *tab) frameID() cdp.FrameID {
	tb.t.Helper()
	nodes, err := chromedp.Run(tb.ctx, chromedp.Nodes(chromedp.CSS("iframe#addon")))
	if err != nil || len(nodes) == 0 {
		tb.t.Fatalf("no iframe on the host page: %v", err)
	}
	return nodes[0].FrameID
}

// eval calls the JavaScript function fn (a declaration such as
// "function (a) { … }" or an arrow function) in the admin page's iframe,
// with args, and decodes its result (awaited) into out. It runs in an
// isolated world: the page's DOM, but none of its globals, and never
// subject to the page's CSP.
func (tb *tab) eval(out any, fn string, args ...any) error {
	fid := tb.frameID()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	world, err := chromedp.Call(ctx, page.CreateIsolatedWorld, page.CreateIsolatedWorldParams{FrameID: fid, WorldName: "e2e"})
	if err != nil {
		return fmt.Errorf("isolated world: %w", err)
	}
	res, err := chromedp.Run(ctx, chromedp.CallFunctionOn[[]byte](fn, func(p *runtime.CallFunctionOnParams) {
		p.ExecutionContextID = world.ExecutionContextID
		p.AwaitPromise = new(true)
	}, args...))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(res, out)
}

func (tb *tab) mustEval(out any, fn string, args ...any) {
	tb.t.Helper()
	if err := tb.eval(out, fn, args...); err != nil {
		tb.t.Fatalf("eval %.60s…: %v", strings.Join(strings.Fields(fn), " "), err)
	}
}

// waitFor polls the predicate fn (in the iframe) until it returns a truthy
// value, which it decodes into out, or fails the test after timeout.
func (tb *tab) waitFor(what string, timeout time.Duration, out any, fn string, args ...any) {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var raw json.RawMessage
		err := tb.eval(&raw, fn, args...)
		if err == nil && len(raw) > 0 && !isFalsy(raw) {
			if out != nil {
				if err := json.Unmarshal(raw, out); err != nil {
					tb.t.Fatalf("%s: decode %s: %v", what, raw, err)
				}
			}
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isFalsy(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", "0", `""`, "undefined":
		return true
	}
	return false
}

// text is the text of the element sel in the iframe ("" if none), as
// written (not as CSS transforms it) with white space collapsed.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	var s string
	tb.mustEval(&s, `function (sel) { const el = document.querySelector(sel); return el ? el.textContent.replace(/\s+/g, " ").trim() : ""; }`, sel)
	return s
}

// waitText waits until the element sel in the iframe shows want.
func (tb *tab) waitText(sel, want string, timeout time.Duration) string {
	tb.t.Helper()
	var got string
	deadline := time.Now().Add(timeout)
	for {
		got = tb.text(sel)
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s shows %q; want it to contain %q", sel, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// focus moves focus to the element sel in the iframe, as a keyboard user
// would have (the keyboard test proves they can).
func (tb *tab) focus(sel string) {
	tb.t.Helper()
	var ok bool
	tb.mustEval(&ok, `function (sel) { const el = document.querySelector(sel); if (!el) return false; el.focus(); return document.activeElement === el; }`, sel)
	if !ok {
		tb.t.Fatalf("cannot focus %s", sel)
	}
}

// press sends keys (kb constants or text) to the focused element.
func (tb *tab) press(keys string) {
	tb.t.Helper()
	tb.do("press "+fmt.Sprintf("%q", keys), chromedp.KeyEvent(keys))
}

// typeInto replaces the value of the input sel by typing text: select all,
// then insert the text as the keyboard's input method would.
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.focus(sel)
	tb.mustEval(nil, `function (sel) { document.querySelector(sel).select(); }`, sel)
	tb.press(kb.Delete)
	if text == "" {
		return
	}
	tb.do("type into "+sel, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	}))
}

// activeID is the id (or a description) of the focused element in the
// iframe; "" when focus is outside it.
func (tb *tab) activeID() string {
	tb.t.Helper()
	var id string
	tb.mustEval(&id, `function () {
		if (!document.hasFocus()) return "";
		const el = document.activeElement;
		if (!el || el === document.body) return "";
		return el.id || (el.tagName.toLowerCase() + (el.dataset.clear ? "[data-clear=" + el.dataset.clear + "]" : "") + (el.getAttribute("href") ? "[href=" + el.getAttribute("href") + "]" : ""));
	}`)
	return id
}

// setViewport sets the tab's width and height in CSS pixels.
func (tb *tab) setViewport(width, height int64) {
	tb.t.Helper()
	tb.do("viewport", chromedp.EmulateViewport(width, height))
}

// screenshot writes the host page with the whole admin page as
// <name>-<width>.png and returns the path: the viewport grows to the admin
// page's height (the iframe fills the viewport below the host's header),
// and comes back afterwards.
func (tb *tab) screenshot(name string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	size, err := chromedp.Run(ctx, chromedp.Evaluate[[]int64](`[window.innerWidth, window.innerHeight, document.getElementById("addon").getBoundingClientRect().top]`))
	if err != nil || len(size) != 3 {
		tb.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	width, height, top := size[0], size[1], size[2]
	var content int64
	if err := tb.eval(&content, `function () { return Math.ceil(document.documentElement.scrollHeight); }`); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	settled := chromedp.Evaluate[chromedp.Void](`new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))`, chromedp.EvalAwaitPromise)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, max(height, top+content)), settled); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err2 := chromedp.Do(ctx, chromedp.EmulateViewport(width, height), settled); err2 != nil && err == nil {
		err = err2
	}
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(tb.shots, fmt.Sprintf("%s-%d.png", name, width))
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	tb.t.Cleanup(func() {
		if tb.t.Failed() {
			tb.t.Logf("screenshot: %s", path)
		}
	})
	return path
}

// screenshots takes name at 1280 and 800 px and comes back to width.
func (tb *tab) screenshots(name string) {
	tb.t.Helper()
	for _, w := range []int64{800, 1280} {
		tb.setViewport(w, 900)
		tb.screenshot(name)
	}
}
