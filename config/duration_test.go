package config

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetention(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30d", want: 30 * day},
		{in: "1d", want: day},
		{in: " 7d ", want: 7 * day},
		{in: "72h", want: 72 * time.Hour},
		{in: "90m", want: 90 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1.5h", want: 90 * time.Minute},

		{in: "0d", wantErr: `"0d" must be greater than zero`},
		{in: "-1d", wantErr: `"-1d" must be greater than zero`},
		{in: "0", wantErr: `"0" must be greater than zero`},
		{in: "-5m", wantErr: `"-5m" must be greater than zero`},
		{in: "99999999d", wantErr: `"99999999d" is too long`},
		{in: "1.5d", wantErr: `"1.5d" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`},
		{in: "d", wantErr: `"d" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`},
		{in: "30 d", wantErr: `"30 d" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`},
		{in: "30", wantErr: `"30" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`},
		{in: "2w", wantErr: `"2w" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`},
		{in: "", wantErr: `"" is not a duration; use whole days ("30d"), hours ("72h") or minutes ("90m")`},
	}
	for _, tt := range tests {
		got, err := ParseRetention(tt.in)
		var gotErr string
		if err != nil {
			gotErr = err.Error()
		}
		if d := cmp.Diff(map[string]any{"duration": tt.want, "error": tt.wantErr}, map[string]any{"duration": got, "error": gotErr}); d != "" {
			t.Errorf("ParseRetention(%q) (-want +got):\n%s", tt.in, d)
		}
	}
}

func TestFormatRetention(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * day:         "30d",
		36 * time.Hour:   "36h0m0s",
		90 * time.Minute: "1h30m0s",
		0:                "0s",
	} {
		if got := formatRetention(d); got != want {
			t.Errorf("formatRetention(%v) = %q, want %q", d, got, want)
		}
	}
}
