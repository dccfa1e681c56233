package controllers

import (
	"context"
	"fmt"
	"time"

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

// reconcileTokenSecret creates the token Secret, rotates the token when the rotate
// annotation changes, and retires the previous token when its grace period ends. It
// returns the current token and when to come back.
func (r *LogAppReconciler) reconcileTokenSecret(ctx context.Context, app *kubeplexv1alpha1.LogApp) (string, time.Duration, error) {
	log := logf.FromContext(ctx)
	name := app.Name + kubeplexv1alpha1.TokenSecretSuffix
	rotation := app.Annotations[kubeplexv1alpha1.RotateTokenAnnotation]
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: name}, sec)
	if apierrors.IsNotFound(err) {
		tok, err := newToken("t")
		if err != nil {
			return "", 0, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: app.Namespace,
				Labels:      routes.Labels(kubeplexv1alpha1.SecretRoleToken),
				Annotations: map[string]string{kubeplexv1alpha1.TokenRotationAnnotation: rotation},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)},
		}
		if err := controllerutil.SetControllerReference(app, sec, r.Client.Scheme()); err != nil {
			return "", 0, fmt.Errorf("set owner of token secret: %w", err)
		}
		if err := r.Client.Create(ctx, sec); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Someone else's Secret that our label-filtered cache cannot see.
				return "", 0, &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
					msg: fmt.Sprintf("Secret %s exists and is not managed by kubeplex; delete or rename it", name)}
			}
			return "", 0, fmt.Errorf("create token secret: %w", err)
		}
		app.Status.TokenSecretName = name
		log.Info("created ingest token secret", "secret", name)
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenIssued", "CreateTokenSecret", "created ingest token Secret %s", name)
		return tok, 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("get token secret: %w", err)
	}
	if !metav1.IsControlledBy(sec, app) {
		return "", 0, &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
			msg: fmt.Sprintf("Secret %s exists and is not owned by this LogApp", name)}
	}
	app.Status.TokenSecretName = name

	upd := sec.DeepCopy()
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	now := r.now()
	var requeue time.Duration
	var event func()
	switch cur := string(upd.Data[kubeplexv1alpha1.TokenSecretKey]); {
	case !routes.ValidIngestToken(cur):
		// Edited by hand or emptied: issue a fresh one. The old value was no token.
		tok, err := newToken("t")
		if err != nil {
			return "", 0, err
		}
		upd.Data = map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)}
		delete(upd.Annotations, kubeplexv1alpha1.PreviousTokenNotAfterAnnotation)
		upd.Annotations[kubeplexv1alpha1.TokenRotationAnnotation] = rotation
		event = func() {
			r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "TokenReissued", "RotateToken",
				"token Secret %s held no valid token; issued a new one", name)
		}
	case upd.Annotations[kubeplexv1alpha1.TokenRotationAnnotation] != rotation:
		tok, err := newToken("t")
		if err != nil {
			return "", 0, err
		}
		grace := r.TokenGracePeriod
		notAfter := now.Add(grace).UTC().Truncate(time.Second)
		upd.Data = map[string][]byte{
			kubeplexv1alpha1.TokenSecretKey:         []byte(tok),
			kubeplexv1alpha1.PreviousTokenSecretKey: []byte(cur),
		}
		upd.Annotations[kubeplexv1alpha1.PreviousTokenNotAfterAnnotation] = notAfter.Format(time.RFC3339)
		upd.Annotations[kubeplexv1alpha1.TokenRotationAnnotation] = rotation
		app.Status.LastTokenRotation = &metav1.Time{Time: now.Truncate(time.Second)}
		requeue = notAfter.Sub(now) + time.Second
		event = func() {
			r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenRotated", "RotateToken",
				"issued a new ingest token; the previous one stays valid until %s", notAfter.Format(time.RFC3339))
		}
	default:
		if _, ok := upd.Data[kubeplexv1alpha1.PreviousTokenSecretKey]; ok {
			notAfter, err := time.Parse(time.RFC3339, upd.Annotations[kubeplexv1alpha1.PreviousTokenNotAfterAnnotation])
			if err != nil || !now.Before(notAfter) {
				delete(upd.Data, kubeplexv1alpha1.PreviousTokenSecretKey)
				delete(upd.Annotations, kubeplexv1alpha1.PreviousTokenNotAfterAnnotation)
				event = func() {
					r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenRetired", "RotateToken", "the previous ingest token's grace period ended")
				}
			} else {
				requeue = notAfter.Sub(now) + time.Second
			}
		}
	}
	token := string(upd.Data[kubeplexv1alpha1.TokenSecretKey])
	if equality.Semantic.DeepEqual(sec, upd) {
		return token, requeue, nil
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		return "", 0, fmt.Errorf("update token secret: %w", err)
	}
	log.Info("updated ingest token secret", "secret", name)
	if event != nil {
		event()
	}
	return token, requeue, nil
}
