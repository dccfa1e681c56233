package drain

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strconv"
	"sync/atomic"
)

// CertNotice writes Logplex's L14 notice ("Error L14 (certificate validation)")
// into the app's stream when a drain's receiver presents a certificate that does
// not verify: once per failure streak, so that a drain retrying every few seconds
// does not fill the stream. Safe for concurrent use (drains with several requests in
// flight).
type CertNotice struct {
	announced atomic.Bool
}

// Failed announces err through env if it is a certificate verification failure and
// this streak has not been announced yet. uri names the receiver without any path
// (which may carry a secret), e.g. "syslog+tls://host:6514/".
func (n *CertNotice) Failed(env Env, err error, uri string) {
	cause, ok := CertificateError(err)
	if !ok || env.Announce == nil || n.announced.Swap(true) {
		return
	}
	env.Announce("Error L14 (certificate validation): error=" + strconv.Quote(cause) + ` uri="` + uri + `"`)
}

// Succeeded ends the streak: the next failure is announced again.
func (n *CertNotice) Succeeded() { n.announced.Store(false) }

// CertificateError reports whether err comes from verifying the receiver's
// certificate, and the verifier's own words.
func CertificateError(err error) (string, bool) {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		if cv.Err != nil {
			return cv.Err.Error(), true
		}
		return cv.Error(), true
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) {
		return err.Error(), true
	}
	return "", false
}
