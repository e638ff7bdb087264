package handlers

import "log/slog"

// levelFor logs server errors at error level and everything else at info.
func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}
