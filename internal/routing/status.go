package routing

import "time"

// RouterStatus is what a router reports at GET /status: the table it runs and the
// health of every drain it delivers to. The manager merges the reports of all router
// replicas into LogDrain status. Counters are cumulative since the router started, so
// the manager sums them across replicas and tolerates restarts by taking increases.
type RouterStatus struct {
	// Router identifies the replica (pod name or host).
	Router string `json:"router"`
	// Started is when this router process started; a new value means counters reset.
	Started time.Time `json:"started"`
	// Version is the routing table version in use ("" before the first load).
	Version string `json:"version"`
	// Drains by drain ID ("<namespace>/<name>").
	Drains map[string]DrainStatus `json:"drains"`
}

// DrainStatus is one drain's health on one router.
type DrainStatus struct {
	Delivered int64 `json:"delivered"`
	Dropped   int64 `json:"dropped"`
	// Forwarded counts the messages this replica handed to an owner of the drain
	// (router --drain-owners) instead of delivering them; the owner counts them
	// again as delivered or dropped, so they are not in Delivered.
	Forwarded   int64      `json:"forwarded,omitempty"`
	Queued      int        `json:"queued"`
	LastSuccess *time.Time `json:"lastSuccess,omitempty"`
	// LastError is redacted: no credentials, tokens or URL userinfo.
	LastError     string     `json:"lastError,omitempty"`
	LastErrorTime *time.Time `json:"lastErrorTime,omitempty"`
}
