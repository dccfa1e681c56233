// Package wire implements the byte formats kubeplex speaks, once, for every binary:
// RFC 5424 syslog records, RFC 6587 octet-counted framing and logplex-1 HTTP batches.
//
// Encoders append to a caller's buffer and decoders return views into the caller's
// bytes, so the router's hot path allocates nothing per message.
package wire
