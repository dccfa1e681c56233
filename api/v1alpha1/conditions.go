package v1alpha1

// Condition types. Ready is the summary every object carries; the others say why.
const (
	// ReadyCondition is True when the object is fully reconciled into the routing table.
	ReadyCondition = "Ready"
	// DeliveringCondition is True when the routers delivered to the drain recently
	// without errors.
	DeliveringCondition = "Delivering"
	// TokenIssuedCondition is True when the LogApp's token Secret holds a valid ingest
	// token that belongs to the app.
	TokenIssuedCondition = "TokenIssued"
	// RoutedCondition is True when the routing table the manager stored holds the
	// LogApp with its current ingest token, so routers accept its producers' lines.
	RoutedCondition = "Routed"
	// HostsClaimedCondition is True when every host in the LogApp's spec.hosts maps to
	// it in the stored routing table (or it asks for none); False when another app
	// holds one of them.
	HostsClaimedCondition = "HostsClaimed"
)

// Condition reasons.
const (
	// ReconciledReason: the object is in the routing table as specified.
	ReconciledReason = "Reconciled"
	// InvalidURLReason: the drain URL cannot be parsed or uses an unsupported form.
	InvalidURLReason = "InvalidURL"
	// URLNotAllowedReason: the drain URL points at an address the URL policy refuses.
	URLNotAllowedReason = "URLNotAllowed"
	// InvalidSelectorReason: a namespace-wide drain's appSelector does not parse.
	InvalidSelectorReason = "InvalidSelector"
	// AppNotFoundReason: the LogApp a drain refers to does not exist.
	AppNotFoundReason = "AppNotFound"
	// AppNotReadyReason: the LogApp a drain refers to exists but is not Ready.
	AppNotReadyReason = "AppNotReady"
	// SecretNotFoundReason: a referenced Secret (or a key in it) is missing.
	SecretNotFoundReason = "SecretNotFound"
	// SecretNotAllowedReason: a referenced Secret has not opted in to being used by
	// drains (type DrainCredentialsSecretType or label DrainCredentialsLabel), so the
	// manager will not read it on the drain author's behalf.
	SecretNotAllowedReason = "SecretNotAllowed"
	// TokenSecretErrorReason: the ingest-token Secret could not be created or read.
	TokenSecretErrorReason = "TokenSecretError"
	// InvalidTLSReason: the drain's TLS settings cannot be used (a CA that is no PEM).
	InvalidTLSReason = "InvalidTLS"
	// InvalidHeadersReason: an OTLP drain's headers Secret holds a key or value that
	// cannot be sent as a request header (the message names keys, never values).
	InvalidHeadersReason = "InvalidHeaders"
	// HostNotResolvedReason: the drain's host name did not resolve (a transient state;
	// the drain keeps its last accepted destination while it is retried).
	HostNotResolvedReason = "HostNotResolved"
	// DrainSecretErrorReason: the drain's own Secret (token, signing key) could not be
	// created or belongs to something else.
	DrainSecretErrorReason = "DrainSecretError"
)

// Reasons of the LogApp's TokenIssued, Routed and HostsClaimed conditions (a token
// Secret problem is TokenSecretErrorReason).
const (
	// TokenValidReason: the token Secret holds a valid ingest token.
	TokenValidReason = "TokenValid"
	// RoutedReason: the stored routing table holds the app with its current token.
	RoutedReason = "Routed"
	// RoutingPendingReason: the stored routing table does not reflect the app's
	// current token or hosts yet (it is rewritten after every change).
	RoutingPendingReason = "RoutingPending"
	// HostsRoutedReason: every requested host maps to the app.
	HostsRoutedReason = "HostsRouted"
	// NoHostsReason: the app requests no hosts.
	NoHostsReason = "NoHosts"
	// HostConflictReason: another app claims one of the hosts too; such a host goes to
	// neither until one of them gives it up.
	HostConflictReason = "HostConflict"
)

// Reasons of the Delivering condition, from the routers' health reports.
const (
	// DeliveredReason: a router delivered to the drain and no error came after.
	DeliveredReason = "Delivered"
	// DeliveryFailedReason: the newest thing a router reported for the drain is an error.
	DeliveryFailedReason = "DeliveryFailed"
	// NoTrafficReason: routers carry the drain but have not delivered anything yet.
	NoTrafficReason = "NoTraffic"
	// NoRouterReportReason: no router has reported on this drain (yet).
	NoRouterReportReason = "NoRouterReport"
	// NotRoutedReason: the drain is not in the routing table (Ready is False and says
	// why), so no router can deliver to it. A reason of its own, so that the drain
	// becoming Ready changes the condition and its message with it.
	NotRoutedReason = "NotRouted"
)

// Labels and annotations the operator sets or reads.
const (
	// AppLabel marks a pod (and, on a namespace, opts it in) as belonging to a LogApp.
	AppLabel = "kubeplex.io/app"
	// DrainCredentialsSecretType is the Secret type that lets LogDrains of the
	// Secret's namespace use it (credentialsSecretRef, tls.caSecretRef). A Secret's
	// type is fixed at creation, so only whoever created it decides.
	DrainCredentialsSecretType = "kubeplex.io/drain-credentials"
	// DrainCredentialsLabel, set to "true", opts an existing Secret in the same way.
	// Anyone who may patch Secrets in the namespace can set it: prefer the type.
	DrainCredentialsLabel = "kubeplex.io/drain-credentials"
	// ManagedByLabel marks objects the manager owns.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on objects the manager owns.
	ManagedByValue = "kubeplex"
	// TokenSecretKey is the key of the ingest token in a LogApp's token Secret.
	TokenSecretKey = "token"
	// PreviousTokenSecretKey holds the rotated-out ingest token during its grace period.
	PreviousTokenSecretKey = "previous-token"
	// TokenSecretSuffix: a LogApp's token Secret is named "<app>" + TokenSecretSuffix.
	TokenSecretSuffix = "-kubeplex-token"
	// DrainSecretSuffix: a LogDrain's own Secret (drain token, HMAC signing key and the
	// destination the manager accepted) is named "<drain>" + DrainSecretSuffix.
	DrainSecretSuffix = "-kubeplex-drain"
	// DrainTokenSecretKey is the key of the drain token (d.<uuid>) in the drain Secret.
	DrainTokenSecretKey = "drain-token"
	// DrainHMACKeySecretKey is the key of the hex HMAC-SHA256 key that signs HTTP
	// batches; receivers verify the Logplex-Signature with it.
	DrainHMACKeySecretKey = "hmac-key"
	// DrainConfigSecretKey holds the destination the manager accepted (URL policy
	// checked, credentials resolved); only accepted drains enter the routing table.
	DrainConfigSecretKey = "accepted.json"
	// SecretRoleLabel says what a manager-owned Secret holds: SecretRoleToken,
	// SecretRoleDrain or SecretRoleRoutes.
	SecretRoleLabel = "kubeplex.io/secret"
	// SecretRoleToken marks a LogApp's ingest-token Secret.
	SecretRoleToken = "token"
	// SecretRoleDrain marks a LogDrain's Secret.
	SecretRoleDrain = "drain"
	// SecretRoleRoutes marks a routing-table shard.
	SecretRoleRoutes = "routes"
	// SecretRoleCollector marks a LogApp's collector Secret: the credential only the
	// injected sidecars mount, which may also write the app's process events.
	SecretRoleCollector = "collector"
	// SecretRolePlatform marks the manager's own credential (in its namespace), with
	// which it writes platform lines (kubeplex[api], [deploy], [router], ...).
	SecretRolePlatform = "platform"
	// SecretRoleAddon marks an add-on's input token Secret (<app>-kubeplex-addon-<name>).
	SecretRoleAddon = "addon"
	// AddonSecretInfix joins app and add-on names in the add-on token Secret's name,
	// key TokenSecretKey (a.<uuid>).
	AddonSecretInfix = "-kubeplex-addon-"
	// CollectorSecretSuffix: a LogApp's collector Secret is "<app>" + CollectorSecretSuffix,
	// key TokenSecretKey (c.<uuid>).
	CollectorSecretSuffix = "-kubeplex-collector"
	// PlatformSecretName is the manager's credential Secret, key TokenSecretKey (p.<uuid>).
	PlatformSecretName = "kubeplex-platform"
	// RotateTokenAnnotation on a LogApp requests a new ingest token whenever its value
	// changes (e.g. a timestamp); the old token stays valid for the grace period.
	RotateTokenAnnotation = "kubeplex.io/rotate-token"
	// TokenRotationAnnotation on the token Secret records the RotateTokenAnnotation
	// value the current token answers, so a rotation happens once per value.
	TokenRotationAnnotation = "kubeplex.io/rotation"
	// PreviousTokenNotAfterAnnotation on the token Secret ends the previous token's
	// grace period (RFC 3339).
	PreviousTokenNotAfterAnnotation = "kubeplex.io/previous-token-not-after"
	// RoutesVersionAnnotation on a routing-table shard Secret is the table version.
	RoutesVersionAnnotation = "kubeplex.io/routes-version"
)

// Pod annotations the injection webhook writes; the LogApp reconciler counts them.
const (
	// InjectionAnnotation records what the webhook did with a pod: InjectionInjected or
	// InjectionSkipped.
	InjectionAnnotation = "kubeplex.io/injection"
	// InjectionReasonAnnotation says why a pod was skipped (e.g. a container without
	// an explicit command in Exec mode).
	InjectionReasonAnnotation = "kubeplex.io/injection-reason"
	// ImageCommandAnnotation lists the containers whose command the webhook read from
	// their image's registry (ENTRYPOINT/CMD), as container=digest,...
	ImageCommandAnnotation = "kubeplex.io/image-command"
	// InjectionInjected: the collector was added.
	InjectionInjected = "injected"
	// InjectionSkipped: the pod belongs to an app but was left unwrapped.
	InjectionSkipped = "skipped"
	// BuildLabel on a Job marks it as a build of the LogApp it names (kubeplex[build]
	// lines); on the Job's pod template (with AppLabel) it makes the webhook name the
	// pods' process "build".
	BuildLabel = "kubeplex.io/build"
	// ProcessTypeLabel on a pod overrides the process type (default: container name).
	ProcessTypeLabel = "kubeplex.io/process-type"
	// InjectNamespaceLabel on a namespace opts its pods into injection ("enabled").
	InjectNamespaceLabel = "kubeplex.io/inject"
)
