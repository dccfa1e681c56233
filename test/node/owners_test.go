//go:build node

package node

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// drainOwners: with router.drainOwners=1 (helm upgrade of the running release), a
// drain of an app whose lines reach both router pods is delivered by one owner only:
// the receiver sees one connection, from the owner pod, and every line once and in
// order per pod; the other pod forwards its half over the peer channel. The routers
// keep drainOwners=1 for the cases after this one (only uninstall and kustomize).
// Then a rolling restart of the routers moves the drain between owners, and once the
// new pods agree it is delivered once again by one of them.
func (s *suite) drainOwners(t *testing.T) {
	const k = 1
	helm(t, "upgrade", release, repo+"/charts/kubeplex", "--namespace", systemNS, "--reuse-values",
		"--set", "router.drainOwners="+strconv.Itoa(k), "--wait", "--timeout", "5m")
	kubectl(t, "rollout", "status", "-n", systemNS, "deployment/"+release+"-router", "--timeout=180s")
	// Both replicas list each other before the drain exists, so that neither starts
	// delivering it as the only member.
	var routers []corev1.Pod
	eventually(t, 2*time.Minute, "both router pods count each other as owners' members", func() error {
		routers = readyRouters(t)
		_, err := pairOwnership(routers, k)
		return err
	})

	rcv := startSyslog(t)
	const app = "owned"
	logApp(t, shopNS, app, "")
	token := logDrain(t, "owned", app, "syslog://"+rcv.Addr, "")
	t.Cleanup(func() { _, _ = runErr(kubectlB, "delete", "-n", shopNS, "logdrain/owned", "--wait=false") })
	// The manager's "Drain … added" line (posted through the router Service to
	// either pod) marks the drain running.
	eventually(t, 2*time.Minute, "the drain's added line at the receiver", func() error {
		msgs, errs := rcv.snapshot()
		if len(errs) > 0 {
			return fmt.Errorf("receiver errors: %v", errs)
		}
		for _, m := range msgs {
			if m.Source == "kubeplex" && strings.HasPrefix(m.Text, "Drain "+token+" added") {
				return nil
			}
		}
		return fmt.Errorf("no 'Drain %s added' line", token)
	})

	appTok := appToken(t, app)
	_, ingest := routerIngest(t)
	const lines = 40
	postRound(t, ingest, appTok, 1, lines)
	eventually(t, 2*time.Minute, "every line once at the receiver, in order per pod", func() error {
		return roundOnce(rcv, token, 1, lines)
	})

	// One connection, from the pod that reports owning the drain.
	var owner []string
	for _, p := range routers {
		rep, err := ownership(p)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(rep.Owned, shopNS+"/owned") { // a drain's ID: namespace/name
			owner = append(owner, p.Status.PodIP)
		}
	}
	conns := rcv.connections()
	ips := make([]string, 0, len(conns))
	for _, c := range conns {
		host, _, _ := net.SplitHostPort(c)
		ips = append(ips, host)
	}
	if len(owner) != k || len(conns) != k || !slices.Equal(ips, owner) {
		t.Errorf("drain connections from %v, want %d from the owner %v", conns, k, owner)
	}

	// A rolling restart replaces both pods one at a time, so the drain moves between
	// owners as each new pod joins and each old one leaves. Once the new pods count
	// each other (and only each other) as members, the drain has one owner among
	// them, and lines posted to both are delivered once each, in order per pod; no
	// line of before the restart arrives again.
	old := map[string]bool{routers[0].Name: true, routers[1].Name: true}
	restart := time.Now()
	kubectl(t, "rollout", "restart", "-n", systemNS, "deployment/"+release+"-router")
	kubectl(t, "rollout", "status", "-n", systemNS, "deployment/"+release+"-router", "--timeout=180s")
	eventually(t, 2*time.Minute, "the new router pods count each other, and only each other, as members", func() error {
		routers = readyRouters(t)
		reps, err := pairOwnership(routers, k)
		if err != nil {
			return err
		}
		if old[routers[0].Name] || old[routers[1].Name] {
			return fmt.Errorf("ready router pods %s, %s (old: %v)", routers[0].Name, routers[1].Name, old)
		}
		owners := 0
		for i, p := range routers {
			rep := reps[i]
			for _, q := range routers {
				if !slices.ContainsFunc(rep.Members, func(m string) bool { return strings.Contains(m, "//"+q.Status.PodIP+":") }) {
					return fmt.Errorf("%s: members %v lack %s (%s)", p.Name, rep.Members, q.Name, q.Status.PodIP)
				}
			}
			if slices.Contains(rep.Owned, shopNS+"/owned") {
				owners++
			}
		}
		if owners != k {
			return fmt.Errorf("%d of the new pods own the drain, want %d", owners, k)
		}
		return nil
	})
	t.Logf("rolling restart: %s and %s agree on the owner %s after the restart began", routers[0].Name, routers[1].Name,
		time.Since(restart).Round(time.Second))
	_, ingest = routerIngest(t)
	postRound(t, ingest, appTok, 2, lines)
	eventually(t, 2*time.Minute, "after the restart, every line once at the receiver, in order per pod", func() error {
		if err := roundOnce(rcv, token, 1, lines); err != nil {
			return fmt.Errorf("lines of before the restart: %w", err)
		}
		return roundOnce(rcv, token, 2, lines)
	})
}

// postRound posts lines "o<round> line 1".."o<round> line <lines>" of the app with
// token appTok, line i to router pod i%2 as process peer.<i%2+1>.
func postRound(t *testing.T, ingest []string, appTok string, round, lines int) {
	t.Helper()
	for i := 1; i <= lines; i++ {
		postLine(t, ingest[i%2], appTok, fmt.Sprintf("peer.%d", i%2+1), fmt.Sprintf("o%d line %d", round, i))
	}
}

// roundOnce reports whether rcv holds every line of a postRound exactly once,
// through the drain with token, in order per pod (per process).
func roundOnce(rcv *syslogReceiver, token string, round, lines int) error {
	msgs, errs := rcv.snapshot()
	if len(errs) > 0 {
		return fmt.Errorf("receiver errors: %v", errs)
	}
	prefix := fmt.Sprintf("o%d line ", round)
	next := map[string]int{"peer.1": 2, "peer.2": 1} // line i went to pod i%2 as peer.<i%2+1>
	got := 0
	for _, m := range msgs {
		if m.Source != "app" || !strings.HasPrefix(m.Text, prefix) {
			continue
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(m.Text, prefix))
		if m.Token != token || i != next[m.Proc] {
			return fmt.Errorf("%s %q (token %q) arrived where line %d was due", m.Proc, m.Text, m.Token, next[m.Proc])
		}
		next[m.Proc] += 2
		got++
	}
	if got != lines {
		return fmt.Errorf("%d of %d lines", got, lines)
	}
	return nil
}

// pairOwnership reads the ownership reports of two ready router pods and checks that
// each uses k owners over two members.
func pairOwnership(routers []corev1.Pod, k int) ([]ownershipReport, error) {
	if len(routers) != 2 {
		return nil, fmt.Errorf("%d ready router pods", len(routers))
	}
	reps := make([]ownershipReport, len(routers))
	for i, p := range routers {
		rep, err := ownership(p)
		if err != nil {
			return nil, err
		}
		if rep.Owners != k || len(rep.Members) != 2 {
			return nil, fmt.Errorf("%s: owners %d, members %v", p.Name, rep.Owners, rep.Members)
		}
		reps[i] = rep
	}
	return reps, nil
}

// ownershipReport is GET /ownership of a router's admin port (router.OwnershipReport).
type ownershipReport struct {
	Members []string `json:"members"`
	Owners  int      `json:"owners"`
	Owned   []string `json:"owned"`
}

func ownership(p corev1.Pod) (ownershipReport, error) {
	var rep ownershipReport
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(podURL(p, "admin") + "/ownership")
	if err != nil {
		return rep, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only body
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("%s /ownership: %s", p.Name, resp.Status)
	}
	return rep, json.NewDecoder(resp.Body).Decode(&rep)
}
