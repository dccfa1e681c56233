package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LogDrainSpec says where an app's stream is delivered: one app's (appRef), or that of
// every app of the namespace the selector matches (appSelector).
// +kubebuilder:validation:XValidation:rule="has(self.appRef) != has(self.appSelector)",message="exactly one of appRef and appSelector must be set"
// +kubebuilder:validation:XValidation:rule="has(self.appRef) == has(oldSelf.appRef)",message="a drain cannot switch between appRef and appSelector; create a new LogDrain"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !isURL(self.url) || url(self.url).getScheme() in ['syslog+tls', 'https', 'otlp+https', 'otlp+grpcs']",message="tls is only used by syslog+tls, https, otlp+https and otlp+grpcs drains"
// +kubebuilder:validation:XValidation:rule="!has(self.otlp) || !isURL(self.url) || url(self.url).getScheme().startsWith('otlp+')",message="otlp is only used by otlp+http, otlp+https, otlp+grpc and otlp+grpcs drains"
// +kubebuilder:validation:XValidation:rule="!has(self.credentialsSecretRef) || !isURL(self.url) || url(self.url).getScheme() in ['http', 'https']",message="credentialsSecretRef is only used by http and https drains"
type LogDrainSpec struct {
	// appRef names the LogApp, in the drain's namespace, whose stream is drained. It
	// cannot change: a drain moved to another app would carry its token (and its
	// receiver's trust) along; create a new drain instead. Exactly one of appRef and
	// appSelector is set.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="appRef is immutable; create a new LogDrain for another app"
	AppRef AppReference `json:"appRef,omitzero"`

	// appSelector makes a namespace-wide drain: it drains every LogApp of the drain's
	// namespace whose labels match, as Heroku's space drains do, following apps as
	// they are created, relabelled and deleted. An empty selector ({}) matches every
	// app of the namespace. The drain has one drain token; each line names its app
	// after it (docs/drains.md). It may change; a drain cannot switch between appRef
	// and appSelector.
	// +optional
	AppSelector *metav1.LabelSelector `json:"appSelector,omitempty"`

	// url is the destination: syslog://host:port (TCP), syslog+tls://host:port,
	// http://host/path or https://host/path (logplex-1), or an OpenTelemetry (OTLP)
	// receiver: otlp+http://host[:port][/path] and otlp+https://… (OTLP/HTTP protobuf,
	// POSTed to /v1/logs unless the URL has a path; default ports 4318 and 443),
	// otlp+grpc://host[:port] (gRPC without TLS) and otlp+grpcs://host[:port] (gRPC over
	// TLS; default ports 4317 and 443). Userinfo in an http(s) URL becomes Basic auth;
	// prefer credentialsSecretRef so the password is not in the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="url must be an absolute URL such as syslog://logs.example.com:514"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || url(self).getScheme() in ['syslog', 'syslog+tls', 'http', 'https', 'otlp+http', 'otlp+https', 'otlp+grpc', 'otlp+grpcs']",message="url scheme must be one of syslog, syslog+tls, http, https, otlp+http, otlp+https, otlp+grpc, otlp+grpcs"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || url(self).getHostname() != ''",message="url must name a host"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || !(url(self).getScheme() in ['syslog', 'syslog+tls']) || url(self).getPort() != ''",message="syslog urls must name a port, e.g. syslog://logs.example.com:514"
	// +kubebuilder:validation:XValidation:rule="!isURL(self) || !(url(self).getScheme() in ['otlp+grpc', 'otlp+grpcs']) || url(self).getEscapedPath() in ['', '/']",message="otlp+grpc urls take no path: the gRPC method is fixed (opentelemetry.proto.collector.logs.v1.LogsService/Export)"
	URL string `json:"url"`

	// credentialsSecretRef points at a Secret, in the drain's namespace, holding the
	// Basic auth username and password for http(s) drains. The Secret must opt in:
	// type kubeplex.io/drain-credentials, or label kubeplex.io/drain-credentials=true
	// (otherwise Ready=False, reason SecretNotAllowed: the manager does not read
	// Secrets the drain's author may not read).
	// +optional
	CredentialsSecretRef *CredentialsSecretReference `json:"credentialsSecretRef,omitempty"`

	// tls configures certificate checks for syslog+tls, https, otlp+https and
	// otlp+grpcs drains.
	// +optional
	TLS *DrainTLS `json:"tls,omitempty"`

	// addon marks a drain provided by an add-on (its name, e.g. "logentries"): the
	// add-on's provider applies the LogDrain and reads its token from status.token to
	// recognise the app's lines (docs/addons.md). It changes nothing in delivery; it
	// tells users (kubectl get logdrains, the API lines) whose drain it is, and it
	// cannot be changed once set.
	// +optional
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="addon is immutable; create a new LogDrain"
	Addon string `json:"addon,omitempty"`

	// otlp configures OpenTelemetry drains (otlp+http, otlp+https, otlp+grpc,
	// otlp+grpcs): request headers and compression.
	// +optional
	OTLP *OTLPOptions `json:"otlp,omitempty"`
}

// OTLPOptions configure an OTLP drain.
type OTLPOptions struct {
	// headersSecretRef names a Secret, in the drain's namespace, whose every key is
	// sent as a request header (gRPC metadata, lower-cased) with its value, e.g.
	// "authorization: Bearer …" or a vendor's API-key header. The Secret must opt in as
	// for credentialsSecretRef. Values are never shown in status, Events or logs.
	// +optional
	HeadersSecretRef *SecretReference `json:"headersSecretRef,omitempty"`

	// compression of request bodies: gzip (the default, as the OpenTelemetry
	// Collector's OTLP exporters) or none.
	// +kubebuilder:validation:Enum=gzip;none
	// +optional
	Compression string `json:"compression,omitempty"`
}

// SecretReference names a Secret in the same namespace.
type SecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// AppReference names a LogApp in the same namespace.
type AppReference struct {
	// name of the LogApp.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// CredentialsSecretReference names a Secret and the keys that hold credentials.
type CredentialsSecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// usernameKey is the key of the username; default "username".
	// +kubebuilder:validation:MaxLength=253
	// +optional
	UsernameKey string `json:"usernameKey,omitempty"`
	// passwordKey is the key of the password; default "password".
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PasswordKey string `json:"passwordKey,omitempty"`
}

// SecretKeyReference names one key of a Secret in the same namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// DrainTLS holds TLS options for a drain.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && has(self.caSecretRef))",message="caSecretRef and insecureSkipVerify are mutually exclusive"
type DrainTLS struct {
	// caSecretRef points at a PEM CA bundle used instead of the system roots; the
	// Secret must opt in as for credentialsSecretRef.
	// +optional
	CASecretRef *SecretKeyReference `json:"caSecretRef,omitempty"`
	// serverName overrides the name checked in the server certificate.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// insecureSkipVerify turns certificate verification off, for self-signed receivers.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// LogDrainStatus is what the operator and the routers observed about the drain.
type LogDrainStatus struct {
	// conditions: Ready (in the routing table) and Delivering (routers deliver to it).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// token is the drain token (d.<uuid>) sent with every message so receivers can
	// tell which drain it came from. It is an identifier, not a credential.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Token string `json:"token,omitempty"`

	// scheme and host of the URL, without credentials, for display.
	// +kubebuilder:validation:MaxLength=300
	// +optional
	Destination string `json:"destination,omitempty"`

	// delivered counts messages the routers delivered to this drain.
	// +optional
	Delivered int64 `json:"delivered,omitempty"`

	// dropped counts messages the routers dropped for this drain (and announced as L10).
	// +optional
	Dropped int64 `json:"dropped,omitempty"`

	// lastDeliveryTime is when a router last delivered to this drain.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`

	// apps is how many Ready LogApps a namespace-wide drain (appSelector) covers.
	// +optional
	Apps int32 `json:"apps,omitempty"`

	// lastError is the newest delivery error, with credentials removed.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// LogDrain delivers one LogApp's stream, or those of a namespace's apps, to a syslog,
// HTTP(S) or OTLP endpoint.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ldrain;drain,categories=kubeplex
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.appRef.name`
// +kubebuilder:printcolumn:name="Apps",type=integer,JSONPath=`.status.apps`,description="apps a namespace-wide drain covers"
// +kubebuilder:printcolumn:name="Destination",type=string,JSONPath=`.status.destination`
// +kubebuilder:printcolumn:name="Addon",type=string,JSONPath=`.spec.addon`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Delivering",type=string,JSONPath=`.status.conditions[?(@.type=="Delivering")].status`
// +kubebuilder:printcolumn:name="Dropped",type=integer,JSONPath=`.status.dropped`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LogDrain struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired drain.
	// +required
	Spec LogDrainSpec `json:"spec"`
	// status is the observed drain.
	// +optional
	Status LogDrainStatus `json:"status,omitempty"`
}

// LogDrainList is a list of LogDrains.
// +kubebuilder:object:root=true
type LogDrainList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LogDrain `json:"items"`
}
