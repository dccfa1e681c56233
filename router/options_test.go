package router

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/kubeplex/kubeplex/internal/egress"
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
				o.Egress != (egress.Options{}) || o.Logger == nil {
				t.Errorf("options = %+v, want the defaults", o)
			}
		}},
		{name: "egress lists and level", args: []string{"--allow-cidrs", "10.0.0.0/8, logs.internal", "--service-cidrs", "10.96.0.0/12",
			"--pod-cidrs", "10.244.0.0/16", "--deny-cidrs", "203.0.113.0/24", "--log-level", "debug"},
			check: func(t *testing.T, o Options) {
				p, err := o.Egress.Policy(t.Context(), "", nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Allow) != 1 || p.Allow[0].String() != "10.0.0.0/8" || strings.Join(p.AllowHosts, ",") != "logs.internal" || len(p.Deny) != 3 {
					t.Errorf("allow %v hosts %v deny %v", p.Allow, p.AllowHosts, p.Deny)
				}
				if !o.Logger.Enabled(t.Context(), slog.LevelDebug) {
					t.Error("debug logging off")
				}
			}},
		{name: "bad allow entry", args: []string{"--allow-cidrs", "10.0.0.0/33"}, wantErr: "-allow-cidrs"},
		{name: "bad service cidr", args: []string{"--service-cidrs", "logs.example"}, wantErr: "-service-cidrs"},
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
