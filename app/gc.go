package app

import "runtime/debug"

// DefaultGCPercent is the garbage collector's target that `serve` sets when
// the GOGC environment variable is not set: the heap may grow to four times
// what is live before a collection, instead of twice. idbridge's live heap
// is small (tens of MB) and its requests allocate briefly, so collections
// cost more CPU than the memory they save: on the SCIM load test this
// raised lookups from 10.2k to 13.2k req/s for 17 MB more peak RSS
// (docs/PERFORMANCE.md). GOGC and GOMEMLIMIT, when set, win; under a
// container memory limit, set GOMEMLIMIT to about 80% of it.
const DefaultGCPercent = 300

// TuneGC applies DefaultGCPercent unless GOGC is set (the runtime has
// then applied it already).
func TuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(DefaultGCPercent)
	}
}
