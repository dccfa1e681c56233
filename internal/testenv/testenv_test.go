package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestEventuallyRetriesUntilNil(t *testing.T) {
	calls := 0
	Eventually(t, "third call", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("cond ran %d times, want 3", calls)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := fmt.Fprintf(&b, "w%d-%d\n", w, i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			_ = b.String()
		}
	})
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
}

func TestFreePortIsFree(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", port, err)
	}
	_ = l.Close() // nothing was accepted
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "config", "crd", "bases")); err != nil {
		t.Errorf("root %s has no CRDs: %v", root, err)
	}
}

func TestStartCapturesOutput(t *testing.T) {
	p := Start(t, "/bin/sh", []string{"TESTENV_WORD=hello"}, "-c", `echo "$TESTENV_WORD"; echo oops >&2`)
	if p.Name != "sh" {
		t.Errorf("name %q, want sh", p.Name)
	}
	Eventually(t, "both lines captured", func() error {
		if out := p.Out.String(); !strings.Contains(out, "hello\n") || !strings.Contains(out, "oops\n") {
			return fmt.Errorf("output %q", out)
		}
		return nil
	})
}
