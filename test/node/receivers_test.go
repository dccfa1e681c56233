//go:build node

package node

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// msg is one message as a receiver got it: HOSTNAME (the drain token), APP-NAME (the
// source), PROCID (the process) and MSG; PRI and STRUCTURED-DATA where the receiver
// keeps whole frames (the TLS syslog and HTTPS receivers; rsyslog's lines do not).
type msg struct {
	Token, Source, Proc, Text string
	Pri                       uint8
	SD                        string
}

func (m msg) String() string { return m.Token + " " + m.Source + " " + m.Proc + " " + m.Text }

// inbox collects messages in arrival order.
type inbox struct {
	mu   sync.Mutex
	msgs []msg
	errs []string
}

func (b *inbox) add(m msg) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	b.mu.Unlock()
}

func (b *inbox) fail(format string, args ...any) {
	b.mu.Lock()
	b.errs = append(b.errs, fmt.Sprintf(format, args...))
	b.mu.Unlock()
}

func (b *inbox) snapshot() ([]msg, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]msg(nil), b.msgs...), append([]string(nil), b.errs...)
}

func parseRecord(rec []byte) (msg, error) {
	f, err := wire.Scan(rec)
	if err != nil {
		return msg{}, err
	}
	return msg{Token: string(f.Hostname), Source: string(f.AppName), Proc: string(f.ProcID), Text: string(f.Text),
		Pri: f.Priority, SD: string(f.StructuredData)}, nil
}

// testCA is a CA made for one test run, and a serving certificate for the node's
// address signed by it.
type testCA struct {
	PEM  []byte
	Cert tls.Certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubeplex node suite CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: nodeIP},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(nodeIP)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{
		PEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
}

// listenNode listens on the node's address, which pods reach through their gateway.
func listenNode(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() }) // may be closed already
	return ln
}

// syslogReceiver takes RFC 6587 octet-counted RFC 5424 frames over TCP (plain or
// TLS) and keeps every message and the remote address of every connection.
type syslogReceiver struct {
	inbox
	Addr  string
	cmu   sync.Mutex
	conns []string
}

// startTLSSyslog is a syslog+tls receiver with the suite CA's certificate.
func startTLSSyslog(t *testing.T, ca *testCA) *syslogReceiver {
	t.Helper()
	ln := tls.NewListener(listenNode(t), &tls.Config{Certificates: []tls.Certificate{ca.Cert}, MinVersion: tls.VersionTLS12})
	return serveSyslog(ln, "tls syslog")
}

// startSyslog is a plain syslog:// receiver.
func startSyslog(t *testing.T) *syslogReceiver {
	t.Helper()
	return serveSyslog(listenNode(t), "syslog")
}

func serveSyslog(ln net.Listener, what string) *syslogReceiver {
	r := &syslogReceiver{Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.cmu.Lock()
			r.conns = append(r.conns, c.RemoteAddr().String())
			r.cmu.Unlock()
			go func() {
				defer func() { _ = c.Close() }() // the peer's stream ended either way
				fr := wire.NewFrameReader(c, 64<<10)
				for {
					rec, err := fr.Next()
					if err != nil {
						if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
							r.fail("%s read: %v", what, err)
						}
						return
					}
					m, err := parseRecord(rec)
					if err != nil {
						r.fail("%s record %q: %v", what, rec, err)
						continue
					}
					r.add(m)
				}
			}()
		}
	}()
	return r
}

// connections returns the remote addresses of the connections accepted so far.
func (r *syslogReceiver) connections() []string {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	return append([]string(nil), r.conns...)
}

// httpsDrain is an HTTPS drain receiver that checks what Logplex and kubeplex promise
// of every batch: logplex-1 framing, Logplex-Msg-Count, the drain token and the HMAC
// signature over the exact body.
type httpsDrain struct {
	inbox
	URL     string
	mu      sync.Mutex
	token   string
	hmacKey []byte
	batches int
}

func (h *httpsDrain) expect(token string, key []byte) {
	h.mu.Lock()
	h.token, h.hmacKey = token, key
	h.mu.Unlock()
}

func startHTTPSDrain(t *testing.T, ca *testCA) *httpsDrain {
	t.Helper()
	h := &httpsDrain{}
	ln := listenNode(t)
	srv := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{ca.Cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ServeTLS(ln, "", "") }() // returns when the listener closes
	t.Cleanup(func() { _ = srv.Close() })
	h.URL = "https://" + ln.Addr().String() + "/drain"
	return h
}

func (h *httpsDrain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.fail("read body: %v", err)
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	token, key := h.token, h.hmacKey
	h.batches++
	h.mu.Unlock()
	if token == "" {
		// The drain's token and key are not known to the test yet: ask for a retry.
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	if got := r.Header.Get(wire.HeaderDrainToken); got != token {
		h.fail("Logplex-Drain-Token %q, want %q", got, token)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(r.Header.Get("Logplex-Signature")), []byte(want)) {
		h.fail("Logplex-Signature %q does not match the body", r.Header.Get("Logplex-Signature"))
	}
	if r.Header.Get(wire.HeaderFrameID) == "" {
		h.fail("no Logplex-Frame-Id")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	b, err := wire.ReadBatch(r, wire.DefaultMaxBody, 64<<10, nil)
	if err != nil {
		h.fail("logplex-1 batch: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if n, _ := strconv.Atoi(r.Header.Get(wire.HeaderMsgCount)); n != len(b.Records) || n == 0 {
		h.fail("Logplex-Msg-Count %q for %d frames", r.Header.Get(wire.HeaderMsgCount), len(b.Records))
	}
	for _, rec := range b.Records {
		m, err := parseRecord(rec)
		if err != nil {
			h.fail("record %q: %v", rec, err)
			continue
		}
		if m.Token != token {
			h.fail("record HOSTNAME %q, want the drain token", m.Token)
		}
		h.add(m)
	}
	w.WriteHeader(http.StatusNoContent)
}

// rsyslog is Debian's rsyslogd as a host process on the node's address (imtcp takes
// RFC 6587 octet-counted frames), writing one line per message. It can be stopped and
// started again on the same port.
type rsyslog struct {
	t    *testing.T
	dir  string
	Port string
	out  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	ln := listenNode(t)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	_ = ln.Close() // only to pick a free port for rsyslogd
	r := &rsyslog{t: t, dir: t.TempDir(), Port: port}
	r.out = filepath.Join(r.dir, "out.log")
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) start() {
	t := r.t
	t.Helper()
	bin := "/usr/sbin/rsyslogd"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("rsyslogd: %v (apt-get install rsyslog; .ci/run does)", err)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
template(name="kubeplex" type="string" string="%%HOSTNAME%% %%APP-NAME%% %%PROCID%% %%msg%%\n")
ruleset(name="in") {
  action(type="omfile" file=%q template="kubeplex" flushOnTXEnd="on" asyncWriting="off")
}
input(type="imtcp" address=%q port=%q ruleset="in")
`, r.dir, r.out, nodeIP, r.Port)
	confPath := filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "-n", "-f", confPath, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	var out testenv.SyncBuffer
	r.cmd.Stdout, r.cmd.Stderr = &out, &out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rsyslogd: %v", err)
	}
	recordPid(t, "rsyslog", r.cmd.Process.Pid)
	r.done = make(chan struct{})
	done := r.done
	go func() { _ = r.cmd.Wait(); close(done) }()
	eventually(t, 20*time.Second, "rsyslogd listening", func() error {
		select {
		case <-done:
			return fmt.Errorf("rsyslogd exited: %s", out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(nodeIP, r.Port), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt) // may have exited
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

func (r *rsyslog) URL() string { return "syslog://" + net.JoinHostPort(nodeIP, r.Port) }

func (r *rsyslog) snapshot() ([]msg, []string) {
	f, err := os.Open(r.out)
	if err != nil {
		return nil, nil
	}
	defer func() { _ = f.Close() }() // read-only
	var msgs []msg
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 128<<10), 128<<10)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		for len(parts) < 4 {
			parts = append(parts, "")
		}
		msgs = append(msgs, msg{Token: parts[0], Source: parts[1], Proc: parts[2], Text: strings.TrimPrefix(parts[3], " ")})
	}
	return msgs, nil
}

// receiver is what a case reads a drain's stream from.
type receiver interface {
	snapshot() ([]msg, []string)
}

// testRegistry is go-containerregistry's in-memory registry served on the node's
// address over plain HTTP: containerd pulls from it (hosts.toml in the node's
// certs.d) and the manager's webhook reads image configs from it.
type testRegistry struct {
	Host string // host:port
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	ln := listenNode(t)
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // returns when the listener closes
	t.Cleanup(func() { _ = srv.Close() })
	r := &testRegistry{Host: ln.Addr().String()}
	dir := filepath.Join(nodeDir, "containerd", "certs.d", r.Host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := fmt.Sprintf("server = \"http://%s\"\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", r.Host, r.Host)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// push copies an image tarball (make images) into the registry as repo:tag.
func (r *testRegistry) push(t *testing.T, tarPath, repoTag string) string {
	t.Helper()
	img, err := tarball.ImageFromPath(tarPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref.String()
}
