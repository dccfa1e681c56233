package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/owner"
)

// ensurePlatformSecret creates the manager's own credential (p.<uuid>, Secret
// PlatformSecretName in the manager's namespace) when it is missing or holds no valid
// token, and returns the token. The routing table carries its digest
// (routing.Table.Platform); it is the only credential that writes platform processes
// (kubeplex[api], [deploy], [build], [router]). Every manager replica reads the same
// Secret, so whichever leads posts with a credential the routers know.
// With ref set, the Secret is owned by it (package owner).
func ensurePlatformSecret(ctx context.Context, c client.Client, namespace string, ref *metav1.OwnerReference) (string, error) {
	sec := &corev1.Secret{}
	key := client.ObjectKey{Namespace: namespace, Name: kubeplexv1alpha1.PlatformSecretName}
	err := c.Get(ctx, key, sec)
	if err == nil {
		if tok := string(sec.Data[kubeplexv1alpha1.TokenSecretKey]); routes.ValidPlatformToken(tok) {
			if !owner.Has(sec, ref) {
				upd := sec.DeepCopy()
				owner.Set(upd, ref)
				if err := c.Update(ctx, upd); err != nil {
					return "", fmt.Errorf("set owner of platform secret: %w", err)
				}
			}
			return tok, nil
		}
		tok, err := newToken("p")
		if err != nil {
			return "", err
		}
		upd := sec.DeepCopy()
		upd.Data = map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)}
		owner.Set(upd, ref)
		if err := c.Update(ctx, upd); err != nil {
			return "", fmt.Errorf("update platform secret: %w", err)
		}
		return tok, nil
	}
	if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get platform secret: %w", err)
	}
	tok, err := newToken("p")
	if err != nil {
		return "", err
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: namespace,
			Labels: routes.Labels(kubeplexv1alpha1.SecretRolePlatform)},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)},
	}
	owner.Set(sec, ref)
	if err := c.Create(ctx, sec); err != nil {
		return "", fmt.Errorf("create platform secret: %w", err)
	}
	return tok, nil
}
