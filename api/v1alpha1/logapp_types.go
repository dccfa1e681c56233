package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CollectorMode selects how the collector captures a worker's output.
// +kubebuilder:validation:Enum=Exec;CRITail
type CollectorMode string

const (
	// CollectorExec wraps the worker's command (`collector run -- CMD`).
	CollectorExec CollectorMode = "Exec"
	// CollectorCRITail tails the container's CRI log files from the node.
	CollectorCRITail CollectorMode = "CRITail"
)

// LogAppSpec says how an app's stream is kept. The app's pods are those labelled
// kubeplex.io/app=<name>: the label the injection webhook reads.
type LogAppSpec struct {
	// historySize is how many of the newest lines the routers keep for log sessions,
	// from 1 to 100000; unset means 1500 (Logplex's default). Zero is refused rather
	// than stored: a Go client's zero value is "unset", so it could never mean "none".
	// +kubebuilder:default=1500
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	HistorySize int32 `json:"historySize,omitempty"`

	// hosts are the HTTP hosts whose load-balancer access logs belong to this app.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Hosts []string `json:"hosts,omitempty"`

	// collectorMode selects how injected collectors capture worker output.
	// +kubebuilder:default=Exec
	// +optional
	CollectorMode CollectorMode `json:"collectorMode,omitempty"`

	// runtimeMetrics turns on Heroku-style log-runtime-metrics lines: every 20 s each
	// wrapped process writes kubeplex[<process>]: source=web.1 dyno=<pod>
	// sample#memory_total=…MB sample#memory_rss=… sample#load_avg_1m=…, read from its
	// container's cgroup. Off by default; applies to pods created after the change
	// (Exec mode only: CRI tail mode has no wrapper in the worker's container).
	// +optional
	RuntimeMetrics bool `json:"runtimeMetrics,omitempty"`

	// addons are the add-on providers that send lines into this app's stream (an
	// alerting or analytics service reporting back, as Heroku add-ons do). Each gets
	// its own ingest token, in the Secret status.addons names; its lines carry the
	// add-on's name as their source (papertrail[alert]), whatever the sender writes,
	// and can go into this app only. Removing an entry revokes its token. See
	// docs/addons.md.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Addons []AddonInput `json:"addons,omitempty"`
}

// AddonInput names an add-on that may write into the app's stream.
type AddonInput struct {
	// name is the add-on's name and the source of its lines: a DNS label of at most
	// 40 characters, other than the sources kubeplex keeps ("app", "kubeplex").
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self != 'app' && self != 'kubeplex'",message="app and kubeplex are kubeplex's own sources"
	Name string `json:"name"`
}

// AddonInputStatus is where an add-on sends its lines and where its token is.
type AddonInputStatus struct {
	// name is the add-on's name (spec.addons[].name).
	Name string `json:"name"`
	// url is the ingest URL the add-on POSTs logplex-1 batches to, with its token as
	// the Basic auth password (user "token").
	// +optional
	URL string `json:"url,omitempty"`
	// tokenSecretName names the Secret, in the app's namespace, that holds the
	// add-on's token under the key "token".
	// +optional
	TokenSecretName string `json:"tokenSecretName,omitempty"`
}

// LogAppStatus is what the operator observed about the app.
type LogAppStatus struct {
	// conditions: Ready summarises the app; TokenIssued (the token Secret holds a valid
	// token), Routed (the stored routing table holds the app with its current token)
	// and HostsClaimed (every spec.hosts entry maps to this app) say why.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// tokenSecretName names the Secret, in the app's namespace, that holds the ingest
	// token under the key "token".
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TokenSecretName string `json:"tokenSecretName,omitempty"`

	// pods is the number of pods labelled kubeplex.io/app=<name>.
	// +optional
	Pods int32 `json:"pods,omitempty"`

	// injectedPods is the number of matching pods that carry the collector.
	// +optional
	InjectedPods int32 `json:"injectedPods,omitempty"`

	// uninjectedPods is the number of matching pods the webhook could not wrap.
	// +optional
	UninjectedPods int32 `json:"uninjectedPods,omitempty"`

	// drains is the number of LogDrains attached to this app.
	// +optional
	Drains int32 `json:"drains,omitempty"`
	// addons are the add-on inputs in spec.addons that have their token.
	// +listType=map
	// +listMapKey=name
	// +optional
	Addons []AddonInputStatus `json:"addons,omitempty"`
	// lastTokenRotation is when the ingest token was last replaced on request.
	// +optional
	LastTokenRotation *metav1.Time `json:"lastTokenRotation,omitempty"`
}

// LogApp is one application's log stream: the pods that feed it, its history and
// the token its producers authenticate with.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lapp;logapp,categories=kubeplex
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.pods`
// +kubebuilder:printcolumn:name="Injected",type=integer,JSONPath=`.status.injectedPods`
// +kubebuilder:printcolumn:name="Uninjected",type=integer,JSONPath=`.status.uninjectedPods`,priority=1
// +kubebuilder:printcolumn:name="Drains",type=integer,JSONPath=`.status.drains`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LogApp struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired app.
	// +optional
	Spec LogAppSpec `json:"spec,omitempty"`
	// status is the observed app.
	// +optional
	Status LogAppStatus `json:"status,omitempty"`
}

// LogAppList is a list of LogApps.
// +kubebuilder:object:root=true
type LogAppList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LogApp `json:"items"`
}
