package collector_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector"
)

// TestParseOptions checks that the environment goes through the flag set: a set
// variable is parsed like its flag (a bad value is an error naming the variable), an
// empty one is unset except where empty turns a listener off, and the command line
// wins over the environment.
func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		env     map[string]string
		wantErr string // substring; "" = no error
		check   func(t *testing.T, c collector.Command)
	}{
		{
			name: "defaults",
			argv: []string{"sidecar"},
			check: func(t *testing.T, c collector.Command) {
				s := c.Sidecar
				if s.Ship.QueueLines != 10000 || s.Ship.QueueBytes != 4<<20 || s.Ship.Attempts != 5 ||
					s.Ship.BackoffMax != 4*time.Second || s.Ship.TokenRefresh != 30*time.Second || s.Ship.Gzip {
					t.Errorf("ship = %+v, want the defaults", s.Ship)
				}
				if s.TraceSyslogAddr != "127.0.0.1:5140" || s.TraceHTTPAddr != "127.0.0.1:5141" || s.TraceOTLPAddr != "127.0.0.1:4318" ||
					s.PodLogDir != "/var/log/pods" {
					t.Errorf("trace %q %q %q, pod log dir %q, want the sidecar defaults", s.TraceSyslogAddr, s.TraceHTTPAddr, s.TraceOTLPAddr, s.PodLogDir)
				}
				if s.FlushTimeout != 5*time.Second || !s.Log.Enabled(t.Context(), slog.LevelInfo) || s.Log.Enabled(t.Context(), slog.LevelDebug) {
					t.Errorf("flush timeout %s or log level not the default", s.FlushTimeout)
				}
			},
		},
		{
			name: "environment parsed like flags",
			argv: []string{"run", "--", "worker"},
			env: map[string]string{
				"KUBEPLEX_ROUTER_URL": "http://router/logs", "KUBEPLEX_QUEUE_LINES": "7", "KUBEPLEX_QUEUE_BYTES": "1024",
				"KUBEPLEX_GZIP": "true", "KUBEPLEX_ATTEMPTS": "2", "KUBEPLEX_BACKOFF_MAX": "1s",
				"KUBEPLEX_FLUSH_TIMEOUT": "2s", "KUBEPLEX_SIDECAR_WAIT": "3s", "KUBEPLEX_LOG_LEVEL": "debug",
				"KUBEPLEX_SOCKET": "/s/collector.sock", "KUBEPLEX_TOKEN": "t.env", "KUBEPLEX_PROCESS": "web.3",
			},
			check: func(t *testing.T, c collector.Command) {
				r := c.Run
				if r.Ship.RouterURL != "http://router/logs" || r.Ship.QueueLines != 7 || r.Ship.QueueBytes != 1024 ||
					!r.Ship.Gzip || r.Ship.Attempts != 2 || r.Ship.BackoffMax != time.Second || r.Ship.Token != "t.env" {
					t.Errorf("ship = %+v", r.Ship)
				}
				if r.FlushTimeout != 2*time.Second || r.SidecarWait != 3*time.Second || !r.Log.Enabled(t.Context(), slog.LevelDebug) {
					t.Errorf("flush %s, sidecar wait %s, or debug logging off", r.FlushTimeout, r.SidecarWait)
				}
				if r.Socket != "/s/collector.sock" || r.StateDir != "/s" || r.Process != "web.3" {
					t.Errorf("socket %q state dir %q process %q", r.Socket, r.StateDir, r.Process)
				}
				if r.TraceSyslogAddr != "" || r.TraceHTTPAddr != "" || r.TraceOTLPAddr != "" {
					t.Errorf("run serves trace %q %q %q by default, want off", r.TraceSyslogAddr, r.TraceHTTPAddr, r.TraceOTLPAddr)
				}
				if strings.Join(r.Args, " ") != "worker" {
					t.Errorf("args %q", r.Args)
				}
			},
		},
		{
			name: "command line wins",
			argv: []string{"run", "--queue-lines", "9", "--", "worker"},
			env:  map[string]string{"KUBEPLEX_QUEUE_LINES": "7"},
			check: func(t *testing.T, c collector.Command) {
				if c.Run.Ship.QueueLines != 9 {
					t.Errorf("queue lines %d, want 9 from the flag", c.Run.Ship.QueueLines)
				}
			},
		},
		{
			name: "empty variable is unset",
			argv: []string{"sidecar"},
			env:  map[string]string{"KUBEPLEX_QUEUE_LINES": "", "KUBEPLEX_POD_LOG_DIR": "", "KUBEPLEX_LOG_LEVEL": ""},
			check: func(t *testing.T, c collector.Command) {
				if c.Sidecar.Ship.QueueLines != 10000 || c.Sidecar.PodLogDir != "/var/log/pods" {
					t.Errorf("queue lines %d, pod log dir %q, want the defaults", c.Sidecar.Ship.QueueLines, c.Sidecar.PodLogDir)
				}
			},
		},
		{
			name: "empty trace address turns the listener off",
			argv: []string{"sidecar"},
			env:  map[string]string{"KUBEPLEX_TRACE_SYSLOG_ADDR": "", "KUBEPLEX_TRACE_HTTP_ADDR": "127.0.0.1:6000", "KUBEPLEX_TRACE_OTLP_ADDR": ""},
			check: func(t *testing.T, c collector.Command) {
				if c.Sidecar.TraceSyslogAddr != "" || c.Sidecar.TraceHTTPAddr != "127.0.0.1:6000" || c.Sidecar.TraceOTLPAddr != "" {
					t.Errorf("trace %q %q, want off and 127.0.0.1:6000", c.Sidecar.TraceSyslogAddr, c.Sidecar.TraceHTTPAddr)
				}
			},
		},
		{
			name: "sidecar containers and identity",
			argv: []string{"sidecar"},
			env: map[string]string{"KUBEPLEX_CONTAINERS": "web, ,worker", "KUBEPLEX_POD_NAME": "shop-0",
				"KUBEPLEX_POD_NAMESPACE": "shop", "KUBEPLEX_POD_UID": "u-1", "KUBEPLEX_MODE": collector.ModeCRITail},
			check: func(t *testing.T, c collector.Command) {
				s := c.Sidecar
				if strings.Join(s.Containers, ",") != "web,worker" || s.PodName != "shop-0" || s.Namespace != "shop" ||
					s.PodUID != "u-1" || s.Hostname != "shop-0" || s.Mode != collector.ModeCRITail {
					t.Errorf("sidecar = %+v", s)
				}
			},
		},
		{
			name: "install",
			argv: []string{"install", "/kubeplex/bin/collector", "/state/web"},
			check: func(t *testing.T, c collector.Command) {
				if c.Install != "/kubeplex/bin/collector" || strings.Join(c.StateDirs, ",") != "/state/web" {
					t.Errorf("install %q state dirs %q", c.Install, c.StateDirs)
				}
			},
		},
		{name: "bad int", argv: []string{"sidecar"}, env: map[string]string{"KUBEPLEX_QUEUE_LINES": "abc"},
			wantErr: `KUBEPLEX_QUEUE_LINES="abc"`},
		{name: "bad bool", argv: []string{"sidecar"}, env: map[string]string{"KUBEPLEX_GZIP": "yes please"},
			wantErr: `KUBEPLEX_GZIP="yes please"`},
		{name: "bad duration", argv: []string{"sidecar"}, env: map[string]string{"KUBEPLEX_BACKOFF_MAX": "4"},
			wantErr: `KUBEPLEX_BACKOFF_MAX="4"`},
		{name: "bad log level", argv: []string{"sidecar"}, env: map[string]string{"KUBEPLEX_LOG_LEVEL": "loud"},
			wantErr: `KUBEPLEX_LOG_LEVEL="loud"`},
		{name: "bad flag value", argv: []string{"sidecar", "--attempts", "many"}, wantErr: "-attempts"},
		{name: "no command", wantErr: "no command"},
		{name: "unknown command", argv: []string{"tail"}, wantErr: `unknown command "tail"`},
		{name: "run without worker", argv: []string{"run"}, wantErr: "no command after --"},
		{name: "install without destination", argv: []string{"install"}, wantErr: "want DEST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(key string) (string, bool) { v, ok := tt.env[key]; return v, ok }
			c, err := collector.ParseOptions(tt.argv, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestHelp: `collector --help` (and help, -h) and `collector run --help` answer with
// the usage text, not "unknown command" and not an error.
func TestHelp(t *testing.T) {
	for _, argv := range [][]string{{"--help"}, {"-h"}, {"help"}, {"run", "--help"}, {"sidecar", "-h"}} {
		_, err := collector.ParseOptions(argv, func(string) (string, bool) { return "", false })
		text, ok := collector.Help(err)
		if !ok || !strings.Contains(text, "collector run [flags]") {
			t.Errorf("%q: err %v, help %v %q", argv, err, ok, text)
		}
		if argv[0] == "run" && !strings.Contains(text, "-trace-http-addr") {
			t.Errorf("%q: help does not list the command's flags", argv)
		}
	}
	if _, ok := collector.Help(errors.New("other")); ok {
		t.Error("an ordinary error taken for help")
	}
}
