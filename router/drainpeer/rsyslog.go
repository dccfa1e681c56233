package drainpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// RsyslogBinary finds rsyslogd, the Debian package's daemon.
func RsyslogBinary() (string, error) {
	for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("rsyslogd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("rsyslogd not found: install the Debian package (apt-get install -y rsyslog)")
}

// Rsyslog is an rsyslogd process receiving syslog over TCP (imtcp, which takes both
// octet-counted and LF framing) and writing one line per message to a file.
type Rsyslog struct {
	Addr string
	out  string
}

// StartRsyslog runs rsyslogd in the foreground with its own config in a temp dir, on
// an unprivileged port; it is stopped at test cleanup. A missing rsyslogd fails the
// test: CI installs it.
func StartRsyslog(t testing.TB) *Rsyslog {
	t.Helper()
	bin, err := RsyslogBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	addr := testenv.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	r := &Rsyslog{Addr: addr, out: filepath.Join(dir, "out.log")}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
template(name="kubeplex" type="string" string="%%HOSTNAME%% %%APP-NAME%% %%PROCID%% %%TIMESTAMP:::date-rfc3339%% %%msg%%\n")
ruleset(name="in") {
  action(type="omfile" file=%q template="kubeplex" flushOnTXEnd="on" asyncWriting="off")
}
input(type="imtcp" address="127.0.0.1" port=%q ruleset="in")
`, dir, r.out, port)
	confPath := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartCmd(t, exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid")))
	testenv.Eventually(t, "rsyslogd listening on "+addr, func() error {
		select {
		case <-p.Exited():
			t.Fatalf("rsyslogd exited: %s", p.Out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		_ = c.Close() // a probe: rsyslogd accepted, which is all it was for
		return nil
	})
	return r
}

// Lines returns what rsyslog wrote: "HOSTNAME APP-NAME PROCID TIMESTAMP MSG" per message.
func (r *Rsyslog) Lines() []string {
	f, err := os.Open(r.out)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // read-only
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 128<<10), 128<<10)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// WaitLines waits until rsyslog wrote at least n lines.
func (r *Rsyslog) WaitLines(t testing.TB, n int) []string {
	t.Helper()
	var got []string
	testenv.Eventually(t, fmt.Sprintf("rsyslog wrote %d lines", n), func() error {
		if got = r.Lines(); len(got) < n {
			return fmt.Errorf("%d lines: %s", len(got), strings.Join(got[:min(5, len(got))], " | "))
		}
		return nil
	})
	return got
}
