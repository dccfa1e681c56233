package drain

import "time"

// RequestOptions tune a drain that delivers in requests (HTTP, OTLP); zero values
// take the defaults in brackets (Defaults). Each such drain's Options embeds it.
type RequestOptions struct {
	// MaxMessages and MaxBytes bound one request [1024 messages; MaxBytes: the
	// drain type's, given to Defaults].
	MaxMessages, MaxBytes int
	// MaxInFlight is how many requests may be open at once while the queue holds a
	// backlog [4]: a receiver that takes a while per request is then still sent
	// enough to keep up. Batches leave in queue order but may complete out of order;
	// a retried batch can arrive after later ones (docs/drains.md).
	MaxInFlight int
	// Attempts is how often a batch is tried before it is dropped and counted [3, as
	// Logplex].
	Attempts int
	// MinBackoff and MaxBackoff bound the jittered wait between attempts [250 ms, 10 s].
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a receiver asks for (Retry-After, gRPC RetryInfo)
	// [2 min]: the receiver is honoured, but a typo there cannot park a drain for days.
	MaxRetryAfter time.Duration
	// ConnectTimeout [3 s] and RequestTimeout [5 s], as Logplex.
	ConnectTimeout, RequestTimeout time.Duration
	// IdleTimeout closes idle connections [4 min]; MaxAge replaces the client and its
	// connection pool [5 h], as Logplex recycles drain connections.
	IdleTimeout, MaxAge time.Duration
}

// Defaults fills the zero fields, MaxBytes with maxBytes.
func (o *RequestOptions) Defaults(maxBytes int) {
	if o.MaxMessages <= 0 {
		o.MaxMessages = 1024
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = maxBytes
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 4
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 2 * time.Minute
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 3 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 4 * time.Minute
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * time.Hour
	}
}
