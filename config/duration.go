package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxDays keeps a day count from overflowing time.Duration (about 292 years).
const maxDays = int64(1<<63-1) / int64(24*time.Hour)

// ParseRetention parses a retention period: whole days ("30d"), which Go's
// time.ParseDuration lacks but is how retention is spoken of, or any Go
// duration ("72h", "90m", "1h30m"). The period must be greater than zero,
// because a zero retention would purge data the moment it is written.
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		switch {
		case err != nil:
			// Fall through to the general message below: "1.5d" and "d" are
			// as wrong as "abc".
		case days <= 0:
			return 0, fmt.Errorf("%q must be greater than zero", s)
		case days > maxDays:
			return 0, fmt.Errorf("%q is too long", s)
		default:
			return time.Duration(days) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("%q must be greater than zero", s)
		}
		return d, nil
	}
	return 0, fmt.Errorf("%q is not a duration; use whole days (\"30d\"), hours (\"72h\") or minutes (\"90m\")", s)
}

// formatRetention is the inverse of ParseRetention for display, so that the
// start-up log shows "30d" rather than "720h0m0s".
func formatRetention(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
