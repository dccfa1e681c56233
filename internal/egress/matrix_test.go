package egress_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kubeplex/kubeplex/internal/egress/egresstest"
)

// TestCheckMatrix runs the shared matrix at the manager's call site.
func TestCheckMatrix(t *testing.T) {
	for _, tt := range egresstest.Matrix() {
		t.Run(tt.Name, func(t *testing.T) {
			_, err := tt.Policy.Check(context.Background(), tt.URL)
			if tt.Allowed {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tt.URL, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) allowed, want refused (%s)", tt.URL, tt.Reason)
			}
			if !strings.Contains(err.Error(), tt.Reason) {
				t.Fatalf("Check(%s) = %q, want it to mention %q", tt.URL, err, tt.Reason)
			}
		})
	}
}
