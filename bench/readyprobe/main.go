// Command readyprobe measures how fast an idbridge binary becomes ready and
// how much memory it holds when idle. Each run execs the binary ("serve") on
// a free 127.0.0.1 port, polls GET /readyz every -poll until the first 200,
// and reports the time from exec to that answer; with -rss it then waits
// -idle and reads VmRSS (and VmHWM, the peak) from /proc/<pid>/status. The
// server is stopped with SIGTERM after each run. bench/startup.sh drives it.
//
//	readyprobe -bin ./idbridge -runs 20 -fresh          # new data dir per run
//	readyprobe -bin ./idbridge -runs 20 -data DIR       # existing data dir
//	readyprobe -bin ./idbridge -runs 1 -rss -data DIR   # idle RSS
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type envFlag []string

func (e *envFlag) String() string     { return strings.Join(*e, ",") }
func (e *envFlag) Set(v string) error { *e = append(*e, v); return nil }

type options struct {
	bin     string
	data    string
	fresh   bool
	poll    time.Duration
	timeout time.Duration
	rss     bool
	idle    time.Duration
	env     []string
	stderr  io.Writer
}

type result struct {
	ready     time.Duration
	rssKiB    int64
	hwmKiB    int64
	exitAfter time.Duration // SIGTERM to exit
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("readyprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var env envFlag
	fs.StringVar(&o.bin, "bin", "", "idbridge binary to start (required)")
	fs.StringVar(&o.data, "data", "", "IDBRIDGE_DATA_DIR to use for every run (created by the first run if missing)")
	fs.BoolVar(&o.fresh, "fresh", false, "use a new, empty data dir for every run (removed afterwards)")
	runs := fs.Int("runs", 20, "number of runs")
	fs.DurationVar(&o.poll, "poll", 500*time.Microsecond, "interval between /readyz polls")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "give up on a run after this long")
	fs.BoolVar(&o.rss, "rss", false, "after ready, wait -idle and report VmRSS/VmHWM")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "idle time before reading RSS")
	fs.Var(&env, "env", "extra KEY=VALUE for the server (repeatable)")
	quiet := fs.Bool("q", false, "print only the summary")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.bin == "" || *runs < 1 || (o.fresh == (o.data != "")) {
		fmt.Fprintln(stderr, "readyprobe: need -bin, -runs >= 1, and exactly one of -fresh or -data DIR")
		return 2
	}
	o.env = env
	o.stderr = stderr

	var results []result
	for i := range *runs {
		r, err := once(o)
		if err != nil {
			fmt.Fprintf(stderr, "readyprobe: run %d: %v\n", i+1, err)
			return 1
		}
		results = append(results, r)
		if !*quiet {
			line := fmt.Sprintf("run %2d: ready in %7.2f ms", i+1, ms(r.ready))
			if o.rss {
				line += fmt.Sprintf(", idle VmRSS %.1f MiB, VmHWM %.1f MiB", mib(r.rssKiB), mib(r.hwmKiB))
			}
			line += fmt.Sprintf(", exit %.1f ms after SIGTERM", ms(r.exitAfter))
			fmt.Fprintln(stdout, line)
		}
	}
	ready := make([]time.Duration, len(results))
	for i, r := range results {
		ready[i] = r.ready
	}
	slices.Sort(ready)
	var sum time.Duration
	for _, d := range ready {
		sum += d
	}
	fmt.Fprintf(stdout, "READY runs=%d mean_ms=%.2f p50_ms=%.2f p90_ms=%.2f min_ms=%.2f max_ms=%.2f\n",
		len(ready), ms(sum/time.Duration(len(ready))), ms(pct(ready, 50)), ms(pct(ready, 90)), ms(ready[0]), ms(ready[len(ready)-1]))
	if o.rss {
		var rss, hwm []int64
		for _, r := range results {
			rss = append(rss, r.rssKiB)
			hwm = append(hwm, r.hwmKiB)
		}
		fmt.Fprintf(stdout, "RSS runs=%d idle_vmrss_mib_max=%.1f idle_vmrss_mib_min=%.1f vmhwm_mib_max=%.1f\n",
			len(rss), mib(slices.Max(rss)), mib(slices.Min(rss)), mib(slices.Max(hwm)))
	}
	return 0
}

func once(o options) (result, error) {
	var res result
	data := o.data
	if o.fresh {
		d, err := os.MkdirTemp("", "idbridge-ready-")
		if err != nil {
			return res, err
		}
		defer os.RemoveAll(d)
		data = filepath.Join(d, "data") // does not exist yet: idbridge creates it
	}
	addr, err := freePort()
	if err != nil {
		return res, err
	}
	cmd := exec.Command(o.bin, "serve")
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"IDBRIDGE_ADDR=" + addr,
		"IDBRIDGE_BASE_URL=http://" + addr,
		"IDBRIDGE_DATA_DIR=" + data,
		"IDBRIDGE_LOG_LEVEL=error",
	}, o.env...)
	cmd.Stdout = io.Discard
	cmd.Stderr = o.stderr

	client := &http.Client{
		Timeout:   250 * time.Millisecond,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	url := "http://" + addr + "/readyz"
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() time.Duration {
		t := time.Now()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return time.Since(t)
	}

	deadline := start.Add(o.timeout)
	for {
		ok, err := readyOnce(client, url)
		if ok {
			res.ready = time.Since(start)
			break
		}
		select {
		case werr := <-exited:
			return res, fmt.Errorf("idbridge exited before ready: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return res, fmt.Errorf("not ready within %s (last: %v)", o.timeout, err)
		}
		time.Sleep(o.poll)
	}
	if o.rss {
		time.Sleep(o.idle)
		res.rssKiB, res.hwmKiB, err = memOf(cmd.Process.Pid)
		if err != nil {
			stop()
			return res, err
		}
	}
	res.exitAfter = stop()
	return res, nil
}

func readyOnce(client *http.Client, url string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("status %d", resp.StatusCode)
	}
	return true, nil
}

// memOf reads VmRSS and VmHWM (KiB) of pid.
func memOf(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	if rss == 0 {
		return 0, 0, errors.New("no VmRSS in /proc/<pid>/status")
	}
	return rss, hwm, nil
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(kib int64) float64      { return float64(kib) / 1024 }
