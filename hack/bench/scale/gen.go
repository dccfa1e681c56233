package main

import (
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
)

// appsPerNamespace spreads the generated apps over namespaces as teams would.
const appsPerNamespace = 5

// genInput writes what the manager's cache holds for apps LogApps and drains
// LogDrains, as the manager's reconcilers would have left it: per app a token Secret
// and a collector Secret, per drain a drain Secret with its token, signing key and
// accepted destination. Drains go round-robin over the apps; half are https with
// Basic auth, half syslog+tls, with host names of the length real ones have.
func genInput(apps, drains int) routes.Input {
	in := routes.Input{Platform: []string{"p.00000000-0000-4000-8000-000000000000"}}
	uids := make([]types.UID, apps)
	for a := range apps {
		ns, name := appNS(a), appName(a)
		uids[a] = types.UID(fmt.Sprintf("00000000-0000-4000-a000-%012d", a))
		in.Apps = append(in.Apps, kubeplexv1alpha1.LogApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uids[a], Generation: 1},
			Spec:       kubeplexv1alpha1.LogAppSpec{HistorySize: 1500, CollectorMode: kubeplexv1alpha1.CollectorExec},
		})
		owner := []metav1.OwnerReference{{APIVersion: "kubeplex.io/v1alpha1", Kind: "LogApp", Name: name, UID: uids[a], Controller: ptr.To(true)}}
		in.Secrets = append(in.Secrets,
			// UIDs and resourceVersions as the API server gives them: the manager's
			// Renderer remembers what it read from each version of a Secret.
			corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + kubeplexv1alpha1.TokenSecretSuffix, OwnerReferences: owner,
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-c000-%012d", a)), ResourceVersion: "1"},
				Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: fmt.Appendf(nil, "t.%08x-0000-4000-8000-000000000000", a)}},
			corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + kubeplexv1alpha1.CollectorSecretSuffix, OwnerReferences: owner,
				UID: types.UID(fmt.Sprintf("00000000-0000-4000-d000-%012d", a)), ResourceVersion: "1"},
				Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: fmt.Appendf(nil, "c.%08x-0000-4000-8000-000000000000", a)}})
	}
	for d := range drains {
		in.Drains = append(in.Drains, genDrain(d, apps))
		in.Secrets = append(in.Secrets, genDrainSecret(d, apps))
	}
	return in
}

func appNS(a int) string   { return fmt.Sprintf("team-%05d", a/appsPerNamespace) }
func appName(a int) string { return fmt.Sprintf("app-%d", a%appsPerNamespace) }

func drainUID(d int) types.UID { return types.UID(fmt.Sprintf("00000000-0000-4000-b000-%012d", d)) }
func drainName(d int) string   { return fmt.Sprintf("drain-%06d", d) }

func genDrain(d, apps int) kubeplexv1alpha1.LogDrain {
	a := d % apps
	return kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: appNS(a), Name: drainName(d), UID: drainUID(d), Generation: 1},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: appName(a)}, URL: drainURL(d, a)}}
}

func drainURL(d, a int) string {
	if d%2 == 0 {
		return fmt.Sprintf("https://logs-%d.collector.example-observability.com/v1/ingest/%s", d%97, appNS(a))
	}
	return fmt.Sprintf("syslog+tls://logs%d.papertrailapp.example.com:%d", d%13, 20000+d%40000)
}

func genDrainSecret(d, apps int) corev1.Secret {
	a := d % apps
	acc := routes.AcceptedDrain{App: appName(a), URL: drainURL(d, a), Generation: 1}
	if d%2 == 0 {
		acc.Username, acc.Password = "kubeplex", fmt.Sprintf("s3cr3t-%016x", d*7919)
	}
	raw, err := json.Marshal(acc)
	if err != nil {
		panic(err) // plain struct
	}
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS(a), Name: drainName(d) + kubeplexv1alpha1.DrainSecretSuffix,
			UID: types.UID(fmt.Sprintf("00000000-0000-4000-e000-%012d", d)), ResourceVersion: "1",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "kubeplex.io/v1alpha1", Kind: "LogDrain",
				Name: drainName(d), UID: drainUID(d), Controller: ptr.To(true)}}},
		Data: map[string][]byte{
			kubeplexv1alpha1.DrainTokenSecretKey:   fmt.Appendf(nil, "d.%08x-0000-4000-8000-000000000000", d),
			kubeplexv1alpha1.DrainHMACKeySecretKey: fmt.Appendf(nil, "%064x", d*104729+1),
			kubeplexv1alpha1.DrainConfigSecretKey:  raw,
		},
	}
}
