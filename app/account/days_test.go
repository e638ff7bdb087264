package account

import (
	"testing"
	"time"
)

// The test connection's words must count days as the admin page does:
// calendar days in UTC, so "in 10 days" on both for an expiry ten dates
// away, whatever the hour.
func TestDaysUntilCountsCalendarDays(t *testing.T) {
	now := time.Date(2026, 11, 29, 23, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC), "today"},
		{time.Date(2026, 11, 30, 0, 10, 0, 0, time.UTC), "tomorrow"},
		{time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC), "in 10 days"},
		{time.Date(2026, 12, 9, 23, 59, 0, 0, time.UTC), "in 10 days"},
	} {
		if got := daysUntil(now, tc.t); got != tc.want {
			t.Errorf("daysUntil(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}
