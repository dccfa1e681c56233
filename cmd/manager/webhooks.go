package main

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
)

// setupWebhooks registers the admission webhooks (the pod-injection webhook of
// internal/webhook) on mgr.GetWebhookServer(). run calls it only when --webhook-port
// is above 0. Until the webhook lands it registers nothing, and controller-runtime
// does not start a webhook server that has no handlers.
func setupWebhooks(_ context.Context, _ ctrl.Manager, _ options) error {
	return nil
}
