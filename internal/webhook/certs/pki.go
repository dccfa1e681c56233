package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// backdate is how far before "now" a new certificate becomes valid, so that an API
// server whose clock runs a little behind the manager's accepts it at once.
const backdate = time.Hour

// pemCertificate is the PEM block type of an X.509 certificate (RFC 7468 section 5.1).
const pemCertificate = "CERTIFICATE"

// Secret data keys. tls.crt/tls.key are the kubernetes.io/tls convention, so the same
// Secret could be mounted as the webhook server's CertDir.
const (
	CertKey   = "tls.crt"
	KeyKey    = "tls.key"
	CAKey     = "ca.crt"
	CAKeyKey  = "ca.key"
	PrevCAKey = "ca-previous.crt"
)

// Bundle is the PEM material kept in the certificate Secret.
type Bundle struct {
	CACert, CAKey []byte // current CA, signs the serving certificate
	PrevCA        []byte // CA replaced by the last rotation, trusted until it expires
	Cert, Key     []byte // serving certificate and key
}

// BundleFromData reads a Bundle from Secret data; missing keys stay empty.
func BundleFromData(data map[string][]byte) Bundle {
	return Bundle{
		CACert: data[CAKey], CAKey: data[CAKeyKey], PrevCA: data[PrevCAKey],
		Cert: data[CertKey], Key: data[KeyKey],
	}
}

// Data is the Bundle as Secret data.
func (b Bundle) Data() map[string][]byte {
	d := map[string][]byte{CAKey: b.CACert, CAKeyKey: b.CAKey, CertKey: b.Cert, KeyKey: b.Key}
	if len(b.PrevCA) > 0 {
		d[PrevCAKey] = b.PrevCA
	}
	return d
}

// Policy says what a valid bundle looks like at a given time.
type Policy struct {
	CAValidity      time.Duration
	ServingValidity time.Duration
	DNSNames        []string
	IPAddresses     []net.IP
}

// renewAt is when a certificate issued for validity is replaced: once less than a
// third of that is left, which leaves slack for a manager that was down or a clock
// that is off.
func renewAt(c *x509.Certificate, validity time.Duration) time.Time {
	return c.NotAfter.Add(-validity / 3)
}

// servingRenewal is the validity serving renewals are measured against. A serving
// certificate is cut short to its CA's expiry, and a CA that is not due has at least
// CAValidity/3 left, so capping at that keeps a cut-short certificate from looking due
// the moment it is issued.
func (p Policy) servingRenewal() time.Duration {
	return min(p.ServingValidity, p.CAValidity/3)
}

// Plan says what must be regenerated in b at time now, and why (empty when nothing).
func Plan(b Bundle, now time.Time, p Policy) (newCA, newServing bool, why string) {
	ca, _, err := parsePair(b.CACert, b.CAKey)
	switch {
	case err != nil:
		return true, true, "no usable CA: " + err.Error()
	case !ca.IsCA:
		return true, true, "CA certificate is not a CA"
	case !now.Before(renewAt(ca, p.CAValidity)):
		return true, true, "CA due for renewal"
	}
	leaf, _, err := parsePair(b.Cert, b.Key)
	switch {
	case err != nil:
		return false, true, "no usable serving certificate: " + err.Error()
	case leaf.CheckSignatureFrom(ca) != nil:
		return false, true, "serving certificate not signed by the current CA"
	case !now.Before(renewAt(leaf, p.servingRenewal())):
		return false, true, "serving certificate due for renewal"
	case !coversNames(leaf, p):
		return false, true, "serving certificate does not cover the webhook's names"
	}
	return false, false, ""
}

func coversNames(c *x509.Certificate, p Policy) bool {
	for _, n := range p.DNSNames {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range p.IPAddresses {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// Renew returns b with whatever Plan asks for regenerated. On a CA rotation the old CA
// moves to PrevCA so that servers still presenting a certificate it signed stay
// trusted until they pick up the new one.
func Renew(b Bundle, now time.Time, p Policy) (Bundle, error) {
	newCA, newServing, _ := Plan(b, now, p)
	out := b
	if newCA {
		if old, _, err := parsePair(b.CACert, b.CAKey); err == nil && now.Before(old.NotAfter) {
			out.PrevCA = b.CACert
		} else {
			out.PrevCA = nil
		}
		certPEM, keyPEM, err := newCACert(now, p.CAValidity)
		if err != nil {
			return Bundle{}, err
		}
		out.CACert, out.CAKey = certPEM, keyPEM
	}
	if newServing {
		certPEM, keyPEM, err := newServingCert(out.CACert, out.CAKey, now, p)
		if err != nil {
			return Bundle{}, err
		}
		out.Cert, out.Key = certPEM, keyPEM
	}
	return out, nil
}

// TrustBundle is the caBundle for the webhook configuration: the current CA and, while
// it is still valid, the previous one.
func (b Bundle) TrustBundle(now time.Time) []byte {
	out := bytes.Clone(b.CACert)
	if prev, err := parseCert(b.PrevCA); err == nil && now.Before(prev.NotAfter) {
		out = append(out, b.PrevCA...)
	}
	return out
}

func newKey() (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return n, nil
}

func newCACert(now time.Time, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("kubeplex-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

func newServingCert(caPEM, caKeyPEM []byte, now time.Time, p Policy) (certPEM, keyPEM []byte, err error) {
	ca, caKey, err := parsePair(caPEM, caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA: %w", err)
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(p.ServingValidity)
	if notAfter.After(ca.NotAfter) { // never outlive the issuer
		notAfter = ca.NotAfter
	}
	cn := "kubeplex-webhook"
	if len(p.DNSNames) > 0 {
		cn = p.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     p.DNSNames,
		IPAddresses:  p.IPAddresses,
		NotBefore:    now.Add(-backdate),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create serving certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}), keyPEM, nil
}

func parseCert(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != pemCertificate {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// parsePair parses a PEM certificate and its PKCS#8 key and checks that they match.
func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("key cannot sign")
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return cert, signer, nil
}
