package v1alpha1

// Condition types. Ready is the summary every object carries; the others say why.
const (
	// ReadyCondition is True when the object is fully reconciled into the routing table.
	ReadyCondition = "Ready"
	// DeliveringCondition is True when the routers delivered to the drain recently
	// without errors.
	DeliveringCondition = "Delivering"
)

// Condition reasons.
const (
	// ReconciledReason: the object is in the routing table as specified.
	ReconciledReason = "Reconciled"
	// InvalidURLReason: the drain URL cannot be parsed or uses an unsupported form.
	InvalidURLReason = "InvalidURL"
	// URLNotAllowedReason: the drain URL points at an address the URL policy refuses.
	URLNotAllowedReason = "URLNotAllowed"
	// AppNotFoundReason: the LogApp a drain refers to does not exist.
	AppNotFoundReason = "AppNotFound"
	// AppNotReadyReason: the LogApp a drain refers to exists but is not Ready.
	AppNotReadyReason = "AppNotReady"
	// SecretNotFoundReason: a referenced Secret (or a key in it) is missing.
	SecretNotFoundReason = "SecretNotFound"
	// TokenSecretErrorReason: the ingest-token Secret could not be created or read.
	TokenSecretErrorReason = "TokenSecretError"
)

// Labels and annotations the operator sets or reads.
const (
	// AppLabel marks a pod (and, on a namespace, opts it in) as belonging to a LogApp.
	AppLabel = "kubeplex.io/app"
	// ManagedByLabel marks objects the manager owns.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on objects the manager owns.
	ManagedByValue = "kubeplex"
	// TokenSecretKey is the key of the ingest token in a LogApp's token Secret.
	TokenSecretKey = "token"
)

// Pod annotations the injection webhook writes; the LogApp reconciler counts them.
const (
	// InjectionAnnotation records what the webhook did with a pod: InjectionInjected or
	// InjectionSkipped.
	InjectionAnnotation = "kubeplex.io/injection"
	// InjectionReasonAnnotation says why a pod was skipped (e.g. a container without
	// an explicit command in Exec mode).
	InjectionReasonAnnotation = "kubeplex.io/injection-reason"
	// InjectionInjected: the collector was added.
	InjectionInjected = "injected"
	// InjectionSkipped: the pod belongs to an app but was left unwrapped.
	InjectionSkipped = "skipped"
	// ProcessTypeLabel on a pod overrides the process type (default: container name).
	ProcessTypeLabel = "kubeplex.io/process-type"
	// InjectNamespaceLabel on a namespace opts its pods into injection ("enabled").
	InjectNamespaceLabel = "kubeplex.io/inject"
)
