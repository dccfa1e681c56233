//go:build node

package node

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managerMemory: the manager's memory with many drains, for the chart's resources
// (values.yaml): 200 LogDrains of one app are applied; once all are Ready, each
// manager container's cgroup (memory usage, peak, RSS, read from the host: the node
// is this machine and kubectl top has no metrics server) is logged, and no manager
// container was restarted (an OOM kill at the chart's limit would show as one).
func (s *suite) managerMemory(t *testing.T) {
	const ns, drains = "node-mem", 200
	// A sink that takes and discards whatever the drains send (their "added" lines).
	ln := listenNode(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() }()
		}
	}()
	logManagerMemory(t, "before")
	kubectl(t, "create", "namespace", ns)
	logApp(t, ns, "mem", "")
	var b strings.Builder
	for i := range drains {
		fmt.Fprintf(&b, "---\napiVersion: kubeplex.io/v1alpha1\nkind: LogDrain\nmetadata: {name: d%d, namespace: %s}\nspec: {appRef: {name: mem}, url: \"syslog://%s\"}\n",
			i, ns, ln.Addr().String())
	}
	kubectlIn(t, b.String(), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "logdrain", "--all", "--timeout=300s")
	logManagerMemory(t, fmt.Sprintf("with %d drains Ready", drains))
	var pods corev1.PodList
	if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(systemNS), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != 0 {
				t.Errorf("manager %s container %s restarted %d times (last: %+v)", p.Name, cs.Name, cs.RestartCount, cs.LastTerminationState.Terminated)
			}
		}
	}
	kubectl(t, "delete", "namespace", ns, "--wait=true", "--timeout=180s")
}

// logManagerMemory logs the memory cgroup of every /manager process on the node
// (cgroup v1 here: usage_in_bytes counts page cache too; the working set is usage
// minus inactive file pages, as the kubelet counts it; max_usage_in_bytes is the peak).
func logManagerMemory(t *testing.T, when string) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if argv0, _, _ := strings.Cut(string(cmd), "\x00"); argv0 != "/manager" {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		var dir string
		for _, l := range strings.Split(string(cg), "\n") {
			if f := strings.SplitN(l, ":", 3); len(f) == 3 && (f[1] == "memory" || (f[0] == "0" && dir == "")) {
				if f[1] == "memory" {
					dir = filepath.Join("/sys/fs/cgroup/memory", f[2])
				} else {
					dir = filepath.Join("/sys/fs/cgroup", f[2]) // cgroup v2
				}
			}
		}
		read := func(name string) int64 {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return -1
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
		stat := map[string]int64{}
		if b, err := os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, " "); ok {
					stat[k], _ = strconv.ParseInt(v, 10, 64)
				}
			}
		}
		usage, peak := read("memory.usage_in_bytes"), read("memory.max_usage_in_bytes")
		inactive, rss := stat["total_inactive_file"], stat["total_rss"]
		if usage < 0 { // cgroup v2
			usage, peak, inactive, rss = read("memory.current"), read("memory.peak"), stat["inactive_file"], stat["anon"]
		}
		mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
		t.Logf("manager pid %s %s: cgroup usage %s, working set %s, peak %s, rss %s (%s)", e.Name(), when,
			mib(usage), mib(usage-inactive), mib(peak), mib(rss), dir)
		found++
	}
	if found == 0 {
		t.Errorf("no /manager process on the node")
	}
}
