// Package wire implements the byte formats kubeplex speaks, once, for every binary:
// RFC 5424 syslog records and their timestamps, RFC 3164 (BSD) syslog messages as
// receivers read them, RFC 6587 octet-counted framing and logplex-1 HTTP batches.
//
// Encoders append to a caller's buffer and decoders return views into the caller's
// bytes, so the router's hot path allocates nothing per message.
package wire
