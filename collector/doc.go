// Package collector is the per-pod side of kubeplex: it runs the worker as a child
// (collector run), serves localhost trace endpoints and tails CRI log files (collector
// sidecar), and ships everything to the router as logplex-1 batches.
//
// It must stay small and must never slow the app, so it imports nothing from k8s.io:
// everything it knows about its pod arrives in environment variables set by the
// manager's webhook (see docs/collector.md).
package collector
