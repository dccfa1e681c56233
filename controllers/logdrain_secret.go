package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
)

// getDrainSecret returns the drain's Secret, nil if there is none yet, or a spec
// error if the name is taken by a Secret the drain does not own.
func (r *LogDrainReconciler) getDrainSecret(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (*corev1.Secret, error) {
	name := d.Name + kubeplexv1alpha1.DrainSecretSuffix
	sec := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get drain secret: %w", err)
	}
	if !metav1.IsControlledBy(sec, d) {
		return nil, &specError{reason: kubeplexv1alpha1.DrainSecretErrorReason,
			msg: fmt.Sprintf("Secret %s exists and is not owned by this LogDrain", name)}
	}
	return sec, nil
}

// writeDrainSecret creates or updates the drain's Secret in one write: the drain
// token, the signing key and, when acc is set (or keep), the accepted destination.
// The Secret, not the status, is the token's durable home: status can be lost
// (restores, wipes), and the token must stay the same for the drain's life.
func (r *LogDrainReconciler) writeDrainSecret(
	ctx context.Context, d *kubeplexv1alpha1.LogDrain, cur *corev1.Secret, acc *routes.AcceptedDrain, keep bool,
) (*corev1.Secret, error) {
	want := map[string][]byte{}
	var have map[string][]byte
	if cur != nil {
		have = cur.Data
	}
	repaired := false
	switch tok := string(have[kubeplexv1alpha1.DrainTokenSecretKey]); {
	case routes.ValidDrainToken(tok):
		want[kubeplexv1alpha1.DrainTokenSecretKey] = []byte(tok)
	case routes.ValidDrainToken(d.Status.Token):
		// The token receivers already know, from status.
		want[kubeplexv1alpha1.DrainTokenSecretKey] = []byte(d.Status.Token)
		repaired = cur != nil
	default:
		tok, err := newToken("d")
		if err != nil {
			return nil, err
		}
		want[kubeplexv1alpha1.DrainTokenSecretKey] = []byte(tok)
		repaired = cur != nil
	}
	if key := string(have[kubeplexv1alpha1.DrainHMACKeySecretKey]); routes.ValidHMACKey(key) {
		want[kubeplexv1alpha1.DrainHMACKeySecretKey] = []byte(key)
	} else {
		key, err := newHMACKey()
		if err != nil {
			return nil, err
		}
		want[kubeplexv1alpha1.DrainHMACKeySecretKey] = []byte(key)
		repaired = repaired || cur != nil
	}
	switch {
	case acc != nil:
		b, err := json.Marshal(acc)
		if err != nil {
			return nil, fmt.Errorf("encode accepted drain: %w", err)
		}
		want[kubeplexv1alpha1.DrainConfigSecretKey] = b
	case keep:
		want[kubeplexv1alpha1.DrainConfigSecretKey] = have[kubeplexv1alpha1.DrainConfigSecretKey]
	}

	name := d.Name + kubeplexv1alpha1.DrainSecretSuffix
	if cur == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: routes.Labels(kubeplexv1alpha1.SecretRoleDrain)},
			Type:       corev1.SecretTypeOpaque,
			Data:       want,
		}
		if err := controllerutil.SetControllerReference(d, sec, r.Client.Scheme()); err != nil {
			return nil, fmt.Errorf("set owner of drain secret: %w", err)
		}
		if err := r.Client.Create(ctx, sec); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Either the Secret this reconciler created a moment ago, which the cache
				// has not seen yet (a transient error: try again), or someone else's,
				// outside the manager's label-filtered cache.
				live := &corev1.Secret{}
				key := types.NamespacedName{Namespace: d.Namespace, Name: name}
				if gerr := r.APIReader.Get(ctx, key, live); gerr == nil && metav1.IsControlledBy(live, d) {
					return nil, fmt.Errorf("drain secret %s created but not yet in the cache", name)
				}
				return nil, &specError{reason: kubeplexv1alpha1.DrainSecretErrorReason,
					msg: fmt.Sprintf("Secret %s exists and is not managed by kubeplex; delete or rename it", name)}
			}
			return nil, fmt.Errorf("create drain secret: %w", err)
		}
		logf.FromContext(ctx).Info("created drain secret", "secret", name)
		return sec, nil
	}
	if equality.Semantic.DeepEqual(cur.Data, want) && hasLabels(cur.Labels, routes.Labels(kubeplexv1alpha1.SecretRoleDrain)) {
		return cur, nil
	}
	upd := cur.DeepCopy()
	upd.Data = want
	for k, v := range routes.Labels(kubeplexv1alpha1.SecretRoleDrain) {
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		upd.Labels[k] = v
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		return nil, fmt.Errorf("update drain secret: %w", err)
	}
	if repaired {
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "DrainSecretRepaired", "Reconcile",
			"drain Secret %s lacked a valid token or signing key; repaired", name)
	}
	return upd, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func sameAcceptedURL(sec *corev1.Secret, raw string) bool {
	var acc routes.AcceptedDrain
	if err := json.Unmarshal(sec.Data[kubeplexv1alpha1.DrainConfigSecretKey], &acc); err != nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	u.User = nil
	return u.String() == acc.URL
}
