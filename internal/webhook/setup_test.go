package webhook

import (
	"flag"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestCollectorResourceFlags: the --collector-* flags default to DefaultResources,
// set what they say, and refuse what would make injected pods invalid.
func TestCollectorResourceFlags(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name    string
		args    []string
		want    corev1.ResourceRequirements
		wantErr string
	}{
		{"defaults", nil, DefaultResources(), ""},
		{"chart values", []string{"--collector-cpu-request=50m", "--collector-memory-request=32Mi", "--collector-memory-limit=128Mi"},
			corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("32Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: q("128Mi")},
			}, ""},
		{"cpu limit", []string{"--collector-cpu-limit=1"},
			corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("10m"), corev1.ResourceMemory: q("16Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1"), corev1.ResourceMemory: q("64Mi")},
			}, ""},
		{"float from a Helm value", []string{"--collector-memory-limit=6.7108864e+07"},
			corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: q("10m"), corev1.ResourceMemory: q("16Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: q("64Mi")},
			}, ""},
		{"all empty: none", []string{"--collector-cpu-request=", "--collector-memory-request=", "--collector-memory-limit="},
			corev1.ResourceRequirements{}, ""},
		{"bad quantity", []string{"--collector-memory-request=lots"}, corev1.ResourceRequirements{}, `--collector-memory-request: want a non-negative quantity such as 10m or 64Mi, got "lots"`},
		{"negative", []string{"--collector-cpu-request=-1"}, corev1.ResourceRequirements{}, "--collector-cpu-request: want a non-negative"},
		{"request above limit", []string{"--collector-memory-request=128Mi"}, corev1.ResourceRequirements{}, "collector memory request 128Mi is above its limit 64Mi"},
		{"cpu request above limit", []string{"--collector-cpu-limit=5m"}, corev1.ResourceRequirements{}, "collector cpu request 10m is above its limit 5m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			fs := flag.NewFlagSet("manager", flag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(append([]string{"--collector-image=kubeplex/collector:test"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			o.Namespace = "kubeplex-system"
			err := o.complete()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("complete() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(o.resources, tt.want) {
				t.Fatalf("resources %v, want %v", o.resources, tt.want)
			}
			// And they reach the containers, also when empty (no default put back).
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Command: []string{"/web"}}}}}
			cfg := testConfig
			cfg.Resources = &o.resources
			if !Mutate(pod, Target{App: "web", TokenSecretName: "web-kubeplex-token"}, cfg) {
				t.Fatal("not injected")
			}
			for _, c := range pod.Spec.InitContainers {
				if !equality.Semantic.DeepEqual(c.Resources, tt.want) {
					t.Errorf("%s resources %v, want %v", c.Name, c.Resources, tt.want)
				}
			}
		})
	}
}
