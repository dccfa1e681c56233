package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
)

// explain turns an API error into the one line a user can act on. The forbidden
// case quotes the API server's own sentence, which names the user, the verb and the
// resource RBAC did not grant.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err):
		msg := err.Error()
		if errors.As(err, &status) {
			msg = status.Status().Message
		}
		if _, after, ok := strings.Cut(msg, " is forbidden: "); ok {
			msg = after
		}
		return fmt.Errorf("forbidden: %s", msg)
	case apierrors.IsUnauthorized(err):
		return errors.New("unauthorized: the API server did not accept your credentials (check your kubeconfig, or log in again)")
	case meta.IsNoMatchError(err) || isMissingResource(err):
		what := "kubeplex.io/v1alpha1 resources"
		var nm *meta.NoKindMatchError
		if errors.As(err, &nm) {
			what = nm.GroupKind.Kind + " (" + nm.GroupKind.Group + ")"
		}
		return fmt.Errorf("the API server does not serve %s: install or upgrade kubeplex's CRDs and manager", what)
	case apierrors.IsInvalid(err):
		return invalid(err)
	}
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ue) && errors.As(err, &oe) {
		return fmt.Errorf("cannot reach the API server at %s: %w", ue.URL, oe.Err)
	}
	return err
}

// isMissingResource is a 404 about the resource type itself (no CRD), not an object.
func isMissingResource(err error) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d == nil || d.Name == ""
}

// invalid lists the fields the API server refused with its reasons, on one line.
func invalid(err error) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil || len(status.Status().Details.Causes) == 0 {
		return err
	}
	d := status.Status().Details
	parts := make([]string, 0, len(d.Causes))
	for _, c := range d.Causes {
		msg := c.Message
		// The field's value is the user's own input; the reason is what they need.
		if rest, ok := strings.CutPrefix(msg, "Invalid value: "); ok {
			if _, reason, ok := strings.Cut(rest, `": `); ok {
				msg = reason
			}
		}
		if c.Field != "" {
			msg = c.Field + ": " + msg
		}
		parts = append(parts, msg)
	}
	return fmt.Errorf("invalid %s: %s", strings.ToLower(d.Kind), strings.Join(parts, "; "))
}
