package collector

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// SidecarOptions configure `collector sidecar`.
type SidecarOptions struct {
	Ship         ShipOptions
	Process      string
	Hostname     string
	Socket       string
	FlushTimeout time.Duration
	Log          *slog.Logger
}

// Sidecar runs the native sidecar until ctx ends, then flushes.
func Sidecar(ctx context.Context, opts SidecarOptions) error {
	return errors.New("sidecar: not available in this build yet")
}
