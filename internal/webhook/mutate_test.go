package webhook

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/mutate")

var testConfig = Config{
	CollectorImage:  "kubeplex/collector:test",
	ImagePullPolicy: corev1.PullIfNotPresent,
	RouterURL:       "http://kubeplex-router.kubeplex-system.svc:8080/logs",
}

// TestMutateGolden runs Mutate on testdata/mutate/NAME.in.yaml and compares the pod
// with NAME.golden.yaml (go test ./internal/webhook -run Golden -update rewrites them).
func TestMutateGolden(t *testing.T) {
	exec := Target{App: "web", TokenSecretName: "web-kubeplex-token", Mode: kubeplexv1alpha1.CollectorExec}
	tail := Target{App: "web", TokenSecretName: "web-kubeplex-token", Mode: kubeplexv1alpha1.CollectorCRITail}
	tests := []struct {
		name         string
		target       Target
		wantInjected bool
		wantReason   string // substring of the skip reason
	}{
		{"exec-single", exec, true, ""},
		{"exec-default-mode", Target{App: "web", TokenSecretName: "web-kubeplex-token"}, true, ""},
		{"exec-statefulset", exec, true, ""},
		{"exec-build-job", exec, true, ""},
		{"exec-runtime-metrics", Target{App: "web", TokenSecretName: "web-kubeplex-token", Mode: kubeplexv1alpha1.CollectorExec, RuntimeMetrics: true}, true, ""},
		{"exec-prewrapped", exec, true, ""},
		{"exec-containers-annotation", exec, true, ""},
		{"exec-otlp-port", exec, true, ""},
		{"exec-otlp-env", exec, true, ""},
		{"exec-no-command", exec, false, "without an explicit command cannot be wrapped: sidecar"},
		{"exec-mount-conflict", exec, false, `container "web" already mounts /kubeplex`},
		{"containers-annotation-unknown", exec, false, `names unknown container "nope"`},
		{"critail", tail, true, ""},
		{"critail-privileged-namespace", Target{App: "web", TokenSecretName: "web-kubeplex-token", Mode: kubeplexv1alpha1.CollectorCRITail, PodSecurityEnforce: "privileged"}, true, ""},
		{"critail-restricted", Target{App: "web", TokenSecretName: "web-kubeplex-token", Mode: kubeplexv1alpha1.CollectorCRITail, PodSecurityEnforce: "baseline"}, false, `Pod Security level "baseline" forbids`},
		{"unknown-mode", Target{App: "web", TokenSecretName: "web-kubeplex-token", Mode: "Magic"}, false, `unknown collectorMode "Magic"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := readPod(t, filepath.Join("testdata", "mutate", tt.name+".in.yaml"))
			if AlreadyProcessed(in) {
				t.Fatal("input already looks processed")
			}
			pod := in.DeepCopy()
			injected := Mutate(pod, tt.target, testConfig)
			if injected != tt.wantInjected {
				t.Fatalf("Mutate = %v, want %v (reason %q)", injected, tt.wantInjected, pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation])
			}
			wantAnn := kubeplexv1alpha1.InjectionInjected
			if !tt.wantInjected {
				wantAnn = kubeplexv1alpha1.InjectionSkipped
			}
			if got := pod.Annotations[kubeplexv1alpha1.InjectionAnnotation]; got != wantAnn {
				t.Errorf("%s = %q, want %q", kubeplexv1alpha1.InjectionAnnotation, got, wantAnn)
			}
			reason := pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation]
			if tt.wantInjected != (reason == "") || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q, want one containing %q", reason, tt.wantReason)
			}
			if !tt.wantInjected {
				// Skipped: only the two annotations differ.
				back := pod.DeepCopy()
				delete(back.Annotations, kubeplexv1alpha1.InjectionAnnotation)
				delete(back.Annotations, kubeplexv1alpha1.InjectionReasonAnnotation)
				if len(back.Annotations) == 0 {
					back.Annotations = in.Annotations
				}
				if !equality.Semantic.DeepEqual(back, in) {
					t.Error("skipped pod changed beyond its annotations")
				}
			}
			if !AlreadyProcessed(pod) {
				t.Error("mutated pod not recognised as processed: a re-invocation would inject again")
			}
			compareGolden(t, filepath.Join("testdata", "mutate", tt.name+".golden.yaml"), pod)
		})
	}
}

func TestAlreadyProcessed(t *testing.T) {
	tests := []struct {
		name string
		pod  corev1.Pod
		want bool
	}{
		{"plain", corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}, false},
		{"annotated skipped", podWith(func(p *corev1.Pod) {
			p.Annotations = map[string]string{kubeplexv1alpha1.InjectionAnnotation: kubeplexv1alpha1.InjectionSkipped}
		}), true},
		{"sidecar present", podWith(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: SidecarContainerName}}
		}), true},
		{"install step present", podWith(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: InstallContainerName}}
		}), true},
		{"volume present", podWith(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: VolumeName}}
		}), true},
		{"token volume present", podWith(func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: TokenVolumeName}}
		}), true},
		{"unrelated init container and volume", podWith(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "migrate"}}
			p.Spec.Volumes = []corev1.Volume{{Name: "kubeplex"}}
		}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AlreadyProcessed(&tt.pod); got != tt.want {
				t.Fatalf("AlreadyProcessed = %v, want %v", got, tt.want)
			}
		})
	}
}

func podWith(f func(*corev1.Pod)) corev1.Pod {
	p := corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Command: []string{"/web"}}}}}
	f(&p)
	return p
}

func readPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p corev1.Pod
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &p
}

func compareGolden(t *testing.T, path string, pod *corev1.Pod) {
	t.Helper()
	got, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the mutated pod:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// FuzzMutate checks Mutate's invariants on arbitrary container lists, commands,
// process-type labels and kubeplex.io/containers annotations: no panic; the outcome is
// recorded; a re-invocation is recognised; a wrapped worker runs exactly its original
// command and args after "--"; a skipped pod differs only in annotations.
func FuzzMutate(f *testing.F) {
	f.Add("web", "/bin/web", "--port 8080", "", "", "", false)
	f.Add("web", "", "--verbose", "worker", "web", "helper", true)
	f.Add("a", "sh -c", "exec x", "", "a,b,,", "b", false)
	f.Add("kubeplex-collector", "/kubeplex/bin/collector run --", "", "", " ", "", true)
	f.Fuzz(func(t *testing.T, name, command, args, processType, containers, second string, tail bool) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, " ")
		}
		pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: name, Command: split(command), Args: split(args)},
		}}}
		if second != "" {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: second, Args: []string{"x"}})
		}
		if processType != "" {
			pod.Labels = map[string]string{kubeplexv1alpha1.ProcessTypeLabel: processType}
		}
		if containers != "" {
			pod.Annotations = map[string]string{ContainersAnnotation: containers}
		}
		if AlreadyProcessed(pod) {
			return
		}
		mode := kubeplexv1alpha1.CollectorExec
		if tail {
			mode = kubeplexv1alpha1.CollectorCRITail
		}
		in := pod.DeepCopy()
		injected := Mutate(pod, Target{App: "a", TokenSecretName: "a-kubeplex-token", Mode: mode}, testConfig)
		if !AlreadyProcessed(pod) {
			t.Fatal("outcome not recorded")
		}
		if !injected {
			back := pod.DeepCopy()
			back.Annotations, in.Annotations = nil, nil
			if !equality.Semantic.DeepEqual(back, in) {
				t.Fatal("skipped pod changed beyond its annotations")
			}
			return
		}
		for i, c := range pod.Spec.Containers {
			orig := in.Spec.Containers[i]
			if tail || len(c.Command) == 0 || c.Command[0] != CollectorPath {
				if !equality.Semantic.DeepEqual(c.Command, orig.Command) {
					t.Fatalf("container %q command changed to %q", c.Name, c.Command)
				}
				continue
			}
			if len(orig.Command) > 0 && orig.Command[0] == CollectorPath {
				continue // pre-wrapped by the author
			}
			want := append(append([]string{CollectorPath, "run", "--"}, orig.Command...), orig.Args...)
			if !equality.Semantic.DeepEqual(c.Command, want) || len(c.Args) != 0 {
				t.Fatalf("container %q: command %q args %q, want %q", c.Name, c.Command, c.Args, want)
			}
		}
	})
}
