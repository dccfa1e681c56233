package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LogSession reasons and the secret role of the session signing keys.
const (
	// IssuedReason: the manager signed the session URL in status.url.
	IssuedReason = "Issued"
	// SigningKeyUnavailableReason: the manager has no session signing key yet.
	SigningKeyUnavailableReason = "SigningKeyUnavailable"
	// SessionsDisabledReason: the manager has no session base URL configured.
	SessionsDisabledReason = "SessionsDisabled"
	// SecretRoleSessionKeys marks the manager's Secret of session signing keys.
	SecretRoleSessionKeys = "session-keys"
)

// DefaultSessionLines is the history a session sends when spec.lines is unset.
const DefaultSessionLines = 100

// MaxSessionLines is the most history lines a session may ask for, as Logplex and
// Heroku's `logs --num` allow.
const MaxSessionLines = 1500

// LogSessionSpec is what a reader asks for; it mirrors Heroku's
// `POST /apps/{app}/log-sessions` (dyno, lines, source, tail). It is immutable: the
// URL is signed over it.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
type LogSessionSpec struct {
	// appRef names the LogApp, in the session's namespace, whose log is read.
	// +required
	AppRef AppReference `json:"appRef"`

	// lines is how many of the newest history lines to send first (also capped by the
	// app's history size). Unset means 100; 0 sends no history (tail only).
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1500
	// +optional
	Lines *int32 `json:"lines,omitempty"`

	// tail keeps the stream open and sends new lines as they arrive.
	// +optional
	Tail bool `json:"tail,omitempty"`

	// source keeps only lines of this source, matched exactly (app, kubeplex, an
	// add-on's name).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[!-~]*$`
	// +optional
	Source string `json:"source,omitempty"`

	// dyno keeps only lines of this process: exactly (web.1), or a process type
	// without a dot (web) matching every process of that type (web.1, web.2, …).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[!-~]*$`
	// +optional
	Dyno string `json:"dyno,omitempty"`
}

// LogSessionStatus is the manager's answer.
type LogSessionStatus struct {
	// url is the session URL: an unguessable, signed capability to read this app's
	// log with these filters. Whoever may get this LogSession may already read the
	// app's log, so it is kept in status.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	URL string `json:"url,omitempty"`

	// expiresAt is the connect-by deadline: a client must open the URL before it. A
	// connected stream lasts as long as the client keeps it open.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// conditions: Ready is True (Issued) once url is set, False with AppNotFound when
	// the LogApp does not exist.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// LogSession asks for a URL to read one LogApp's log: history, then (with tail) new
// lines. RBAC `create` on logsessions in a namespace is the permission to read the
// logs of its apps, and every session shows in the API server's audit log.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=logsess,categories=kubeplex
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.appRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Tail",type=boolean,JSONPath=`.spec.tail`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LogSession struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the requested session.
	// +required
	Spec LogSessionSpec `json:"spec"`
	// status is the manager's answer.
	// +optional
	Status LogSessionStatus `json:"status,omitempty"`
}

// LogSessionList is a list of LogSessions.
// +kubebuilder:object:root=true
type LogSessionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LogSession `json:"items"`
}

// HistoryLines returns spec.lines, or the default when unset.
func (s *LogSessionSpec) HistoryLines() int {
	if s.Lines == nil {
		return DefaultSessionLines
	}
	return int(*s.Lines)
}
