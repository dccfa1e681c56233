package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmChartRefuses: values of the wrong type and clusters too old for native
// sidecars fail helm with a message that names the problem, before anything is
// installed.
func TestHelmChartRefuses(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM is not set: run `make test`, which builds helm into bin/")
	}
	chart := filepath.Join(repoRoot(t), "charts", "kubeplex")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"replicas not a number", []string{"--kube-version", "1.37.2", "--set", "manager.replicas=two"}, "/manager/replicas"},
		{"unknown pull policy", []string{"--kube-version", "1.37.2", "--set", "image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		{"port out of range", []string{"--kube-version", "1.37.2", "--set", "router.httpPort=70000"}, "/router/httpPort"},
		{"allowCIDRs not a list", []string{"--kube-version", "1.37.2", "--set", "manager.allowCIDRs=10.0.0.0/8"}, "/manager/allowCIDRs"},
		{"metrics.secure not a boolean", []string{"--kube-version", "1.37.2", "--set-string", "metrics.secure=yes"}, "/metrics/secure"},
		{"Kubernetes 1.28", []string{"--kube-version", "1.28.9"}, "requires kubeVersion"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(helm, append([]string{"template", "kubeplex", chart}, tt.args...)...).CombinedOutput()
			if err == nil {
				t.Fatalf("helm template %v succeeded", tt.args)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("helm template %v: error does not mention %q:\n%s", tt.args, tt.want, out)
			}
		})
	}
}
