package router

import (
	"log/slog"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, o Options)
	}{
		{name: "defaults", check: func(t *testing.T, o Options) {
			if o.HTTPAddr != ":8080" || o.QueueSize <= 0 || o.Limits.MaxFrame != 64<<10 || o.LogLevel != slog.LevelInfo ||
				len(o.AllowCIDRs) != 0 || len(o.AllowHosts) != 0 || o.Logger == nil {
				t.Errorf("options = %+v, want the defaults", o)
			}
		}},
		{name: "allow list and level", args: []string{"--allow-cidrs", "10.0.0.0/8, logs.internal", "--log-level", "debug"},
			check: func(t *testing.T, o Options) {
				if len(o.AllowCIDRs) != 1 || o.AllowCIDRs[0].String() != "10.0.0.0/8" || strings.Join(o.AllowHosts, ",") != "logs.internal" {
					t.Errorf("allow %v hosts %v", o.AllowCIDRs, o.AllowHosts)
				}
				if !o.Logger.Enabled(t.Context(), slog.LevelDebug) {
					t.Error("debug logging off")
				}
			}},
		{name: "bad allow entry", args: []string{"--allow-cidrs", "10.0.0.0/33"}, wantErr: "-allow-cidrs"},
		{name: "bad level", args: []string{"--log-level", "loud"}, wantErr: "-log-level"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseFlags(tt.args)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}
