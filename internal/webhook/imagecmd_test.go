package webhook

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestWebhookImageCommands: with --resolve-image-commands a worker that names only an
// image is wrapped with its image's ENTRYPOINT and CMD, read from a private registry
// (go-containerregistry's in-memory one on 127.0.0.1) with the pod's pull secret; a
// registry that cannot answer leaves the pod skipped with the reason.
func TestWebhookImageCommands(t *testing.T) {
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); r.URL.Path != "/v2/" && (!ok || u != "bob" || p != "pw") {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := mutate.Config(empty.Image, v1.Config{Entrypoint: []string{"/web"}, Cmd: []string{"--port", "80"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/shop/web:1", name.Insecure)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "bob", Password: "pw"})); err != nil {
		t.Fatal(err)
	}
	closed := testenv.FreeAddr(t) // nothing listens there

	s := startStackWith(t, func(o *Options) {
		o.ResolveImageCommands = true
		o.InsecureRegistries = host + "," + closed
	})
	c := s.c
	ns := "imagecmd"
	ensureNamespace(t, c, ns, map[string]string{kubeplexv1alpha1.InjectNamespaceLabel: "enabled"})
	createApp(t, c, ns, "web", kubeplexv1alpha1.CollectorExec, true)
	auth := base64.StdEncoding.EncodeToString([]byte("bob:pw"))
	pull := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, auth)}}
	if err := c.Create(t.Context(), pull); err != nil {
		t.Fatal(err)
	}

	t.Run("image command read with the pull secret", func(t *testing.T) {
		pod := createPodWith(t, c, ns, appLabels("web"), func(p *corev1.Pod) {
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		}, corev1.Container{Name: "web", Image: host + "/shop/web:1"})
		if got := pod.Annotations[kubeplexv1alpha1.InjectionAnnotation]; got != kubeplexv1alpha1.InjectionInjected {
			t.Fatalf("injection %q, reason %q", got, pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation])
		}
		w := pod.Spec.Containers[0]
		if got, want := strings.Join(w.Command, " "), "/kubeplex/bin/collector run -- /web --port 80"; got != want || len(w.Args) != 0 {
			t.Errorf("worker command %q args %q, want %q", got, w.Args, want)
		}
		if a := pod.Annotations[kubeplexv1alpha1.ImageCommandAnnotation]; !strings.HasPrefix(a, "web=sha256:") {
			t.Errorf("image-command annotation %q", a)
		}
	})
	t.Run("args replace the image's CMD", func(t *testing.T) {
		pod := createPodWith(t, c, ns, appLabels("web"), func(p *corev1.Pod) {
			p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		}, corev1.Container{Name: "web", Image: host + "/shop/web:1", Args: []string{"--port", "9000"}})
		if got, want := strings.Join(pod.Spec.Containers[0].Command, " "), "/kubeplex/bin/collector run -- /web --port 9000"; got != want {
			t.Errorf("worker command %q, want %q", got, want)
		}
	})
	t.Run("no pull secret: skipped with the registry's answer", func(t *testing.T) {
		pod := createPod(t, c, ns, appLabels("web"), corev1.Container{Name: "web", Image: host + "/shop/web:1"})
		assertSkippedFor(t, pod, "could not be read from its image's registry")
	})
	t.Run("registry down: skipped within the budget", func(t *testing.T) {
		pod := createPod(t, c, ns, appLabels("web"), corev1.Container{Name: "web", Image: closed + "/shop/web:1"})
		assertSkippedFor(t, pod, "could not be read from its image's registry")
	})
}

func assertSkippedFor(t *testing.T, pod *corev1.Pod, want string) {
	t.Helper()
	if pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionSkipped {
		t.Fatalf("injection %q, want skipped", pod.Annotations[kubeplexv1alpha1.InjectionAnnotation])
	}
	if r := pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation]; !strings.Contains(r, want) {
		t.Errorf("reason %q does not say %q", r, want)
	}
	if len(pod.Spec.Containers[0].Command) != 0 {
		t.Errorf("skipped pod changed: command %q", pod.Spec.Containers[0].Command)
	}
}
