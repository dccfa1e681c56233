package collector_test

import (
	"strings"
	"testing"

	"github.com/kubeplex/kubeplex/collector"
)

// FuzzParseOptions: whatever command line and environment a pod spec gives the
// collector, parsing ends in a command or a clear error, never a panic (a panic
// here would be a logging problem turned into an app outage).
func FuzzParseOptions(f *testing.F) {
	f.Add("run\x00--\x00sh\x00-c\x00echo hi", "KUBEPLEX_ROUTER_URL=http://r/logs\x00KUBEPLEX_PROCESS=web.1")
	f.Add("sidecar\x00--max-line=-1", "KUBEPLEX_CONTAINERS=a,b,,c")
	f.Add("install\x00/tmp/x", "")
	f.Add("--help", "KUBEPLEX_QUEUE=1e99")
	f.Fuzz(func(t *testing.T, argv, env string) {
		args := strings.Split(argv, "\x00")
		vars := map[string]string{}
		for _, kv := range strings.Split(env, "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vars[k] = v
			}
		}
		cmd, err := collector.ParseOptions(args, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		if err == nil && cmd.Name == "" {
			t.Fatalf("%q: no command and no error", args)
		}
	})
}
