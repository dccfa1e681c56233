//go:build node

package node

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// peerGather: a log session is served by one router pod and gathers the other
// replica over the peer channel. Lines of one app are posted straight to each
// router pod in turn (its pod IP, the app token, as a collector would), so each
// replica holds only half of them; `kubeplex logs` through a port-forward of the
// first pod alone prints all of them, merged in time order, and `--tail` shows the
// new lines posted to either pod.
func (s *suite) peerGather(t *testing.T) {
	s.gatherFromPeers(t, "g1")
}

// gatherFromPeers is the case's body; prefix names the run in its lines, so that it
// can run again after a change to the peer channel.
func (s *suite) gatherFromPeers(t *testing.T, prefix string) {
	const app = "peers"
	logApp(t, shopNS, app, "")
	token := appToken(t, app)
	routers, ingest := routerIngest(t)
	// Line i goes to router i%2, stamped now: both replicas' halves interleave in time.
	post := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			postLine(t, ingest[i%2], token, fmt.Sprintf("peer.%d", i%2+1), fmt.Sprintf("%s line %d", prefix, i))
		}
	}
	const half = 20
	post(1, half)

	cli := buildCLI(t)
	routerURL := portForward(t, "pod/"+routers[0].Name, 8080)
	lineOf := func(out string) []string {
		var got []string
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if m := herokuLine.FindStringSubmatch(sc.Text()); m != nil && strings.HasPrefix(m[4], prefix+" line ") {
				got = append(got, m[3]+" "+m[4])
			}
		}
		return got
	}
	want := func(from, to int) []string {
		var w []string
		for i := from; i <= to; i++ {
			w = append(w, fmt.Sprintf("peer.%d %s line %d", i%2+1, prefix, i))
		}
		return w
	}
	// History: both halves, in the order they were posted (time order).
	eventually(t, time.Minute, "kubeplex logs via "+routers[0].Name+" prints both replicas' lines", func() error {
		cmd := exec.Command(cli, "logs", app, "-n", shopNS, "--num", "200", "-s", "app", "--router-url", routerURL)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("kubeplex logs: %w: %s", err, exitStderr(err))
		}
		if got, w := lineOf(string(out)), want(1, half); strings.Join(got, "\n") != strings.Join(w, "\n") {
			return fmt.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
		return nil
	})

	// Tail: new lines posted to either pod.
	tail := exec.Command(cli, "logs", app, "-n", shopNS, "--tail", "--num", "1", "-s", "app", "--router-url", routerURL)
	tail.Env = append(os.Environ(), "NO_COLOR=1")
	tout, terr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	tail.Stdout, tail.Stderr = tout, terr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	recordPid(t, "cli-tail-peers", tail.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- tail.Wait() }()
	t.Cleanup(func() {
		_ = tail.Process.Kill() // it may have exited already
		exit := <-done
		if t.Failed() {
			t.Logf("kubeplex logs --tail (exit: %v) stdout:\n%s\nstderr:\n%s", exit, tout.String(), terr.String())
		}
	})
	eventually(t, time.Minute, "the tail prints its one history line", func() error {
		if len(lineOf(tout.String())) == 0 {
			return fmt.Errorf("no line yet; stderr %q", terr.String())
		}
		return nil
	})
	post(half+1, 2*half)
	// Each replica's lines in order; between the two, arrival order is the peer
	// stream's, so only the set is compared across them.
	eventually(t, time.Minute, "the tail shows the new lines of both replicas", func() error {
		got := lineOf(tout.String())[1:]
		for _, proc := range []string{"peer.1 ", "peer.2 "} {
			var g, w []string
			for _, l := range got {
				if strings.HasPrefix(l, proc) {
					g = append(g, l)
				}
			}
			for _, l := range want(half+1, 2*half) {
				if strings.HasPrefix(l, proc) {
					w = append(w, l)
				}
			}
			if strings.Join(g, "\n") != strings.Join(w, "\n") {
				return fmt.Errorf("%s: got\n%s\nwant\n%s", proc, strings.Join(g, "\n"), strings.Join(w, "\n"))
			}
		}
		return nil
	})
	if err := tail.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
}

// appToken is the ingest token of app in shopNS.
func appToken(t *testing.T, app string) string {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	var la kubeplexv1alpha1.LogApp
	if err := cl.Get(ctx, client.ObjectKey{Namespace: shopNS, Name: app}, &la); err != nil {
		t.Fatal(err)
	}
	var sec corev1.Secret
	if err := cl.Get(ctx, client.ObjectKey{Namespace: shopNS, Name: la.Status.TokenSecretName}, &sec); err != nil {
		t.Fatal(err)
	}
	return string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
}

// routerIngest returns the two ready router pods and each one's POST /logs URL on
// its pod IP.
func routerIngest(t *testing.T) ([]corev1.Pod, []string) {
	t.Helper()
	routers := readyRouters(t)
	if len(routers) != 2 {
		t.Fatalf("%d ready router pods, want 2", len(routers))
	}
	ingest := make([]string, len(routers))
	for i, p := range routers {
		ingest[i] = podURL(p, "http") + "/logs"
	}
	return routers, ingest
}

// podURL is http://<pod IP>:<the router container's port of that name>.
func podURL(p corev1.Pod, port string) string {
	n := 0
	for _, cp := range p.Spec.Containers[0].Ports {
		if cp.Name == port {
			n = int(cp.ContainerPort)
		}
	}
	return "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(n))
}

// postLine posts one app line of process proc, stamped now, to a router's POST /logs
// with the app token, as a collector would; until it is taken (a router that has not
// loaded a new app's token yet answers 401).
func postLine(t *testing.T, url, token, proc, text string) {
	t.Helper()
	rec := fmt.Sprintf("<190>1 %s host app %s - - %s", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), proc, text)
	eventually(t, time.Minute, "POST "+url+" takes "+text, func() error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(wire.AppendFrame(nil, []byte(rec))))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", wire.ContentType)
		req.SetBasicAuth("token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close() // only the status matters
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("POST %s: %d", url, resp.StatusCode)
		}
		return nil
	})
}

// readyRouters lists the router pods that are Ready, not being deleted.
func readyRouters(t *testing.T) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(systemNS),
		client.MatchingLabels{"app.kubernetes.io/component": "router"}); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}
