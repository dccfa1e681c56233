package main

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	podwebhook "github.com/kubeplex/kubeplex/internal/webhook"
)

// setupWebhooks registers the pod-injection webhook (internal/webhook) on
// mgr.GetWebhookServer() and, with self-managed certificates, provisions them before
// the server starts. run calls it only when --webhook-port is above 0.
func setupWebhooks(ctx context.Context, mgr ctrl.Manager, opts options) error {
	wo := opts.Webhook
	wo.Namespace = opts.Namespace
	return podwebhook.Setup(ctx, mgr, wo)
}
