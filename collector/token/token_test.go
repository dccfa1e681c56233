package token

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/internal/secretvol"
)

const (
	tokA = "t.0b8e7f0e-3c1d-4c55-9a51-6a1f3c0e2d11"
	tokB = "t.7c2a9d4b-5e6f-4a1b-8c3d-2e1f0a9b8c77"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr string
	}{
		{"bare", write("bare", tokA), tokA, ""},
		{"trailing newline", write("nl", tokA+"\n"), tokA, ""},
		{"missing", filepath.Join(dir, "absent"), "", "no such file"},
		{"empty", write("empty", " \n"), "", "empty"},
		{"too large", write("large", strings.Repeat("x", 5000)), "", "larger than"},
		{"directory", dir, "", "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Open(tt.path, 0)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Open error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Token(); got != tt.want {
				t.Fatalf("Token = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestKubeletSwap: the kubelet's atomic update of a Secret volume is seen by Reload at
// once and by Token after the interval; a broken file keeps the token in hand.
func TestKubeletSwap(t *testing.T) {
	dir := t.TempDir()
	if err := secretvol.Write(dir, map[string]string{"token": tokA}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "token")

	t.Run("Reload", func(t *testing.T) {
		f, err := Open(path, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := f.Reload(); changed || err != nil {
			t.Fatalf("Reload of an unchanged file = %v, %v", changed, err)
		}
		if err := secretvol.Write(dir, map[string]string{"token": tokB}); err != nil {
			t.Fatal(err)
		}
		// Within the interval Token does not look at the file.
		if got := f.Token(); got != tokA {
			t.Fatalf("Token before the interval = %q, want the old token", got)
		}
		if changed, err := f.Reload(); !changed || err != nil {
			t.Fatalf("Reload after the swap = %v, %v; want changed", changed, err)
		}
		if got := f.Token(); got != tokB {
			t.Fatalf("Token = %q, want the new token", got)
		}
		if err := secretvol.Write(dir, map[string]string{"token": tokA}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("periodic check", func(t *testing.T) {
		f, err := Open(path, time.Nanosecond)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Token(); got != tokA {
			t.Fatalf("Token = %q", got)
		}
		if err := secretvol.Write(dir, map[string]string{"token": tokB}); err != nil {
			t.Fatal(err)
		}
		f.checked = time.Time{} // the interval has passed, without waiting for it
		if got := f.Token(); got != tokB {
			t.Fatalf("Token after the swap = %q, want the new token", got)
		}
	})

	t.Run("broken file keeps the token", func(t *testing.T) {
		f, err := Open(path, time.Nanosecond)
		if err != nil {
			t.Fatal(err)
		}
		if err := secretvol.Write(dir, map[string]string{"token": ""}); err != nil {
			t.Fatal(err)
		}
		if changed, err := f.Reload(); changed || err == nil {
			t.Fatalf("Reload of an empty file = %v, %v; want an error", changed, err)
		}
		f.checked = time.Time{} // due for a check, which finds the file still empty
		if got := f.Token(); got != tokB {
			t.Fatalf("Token = %q, want the last good token", got)
		}
		if err := os.Remove(filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		if changed, err := f.Reload(); changed || err == nil || strings.Contains(err.Error(), tokB) {
			t.Fatalf("Reload of a dangling link = %v, %v; want an error without the token", changed, err)
		}
		if got := f.Token(); got != tokB {
			t.Fatalf("Token = %q, want the last good token", got)
		}
	})
}
