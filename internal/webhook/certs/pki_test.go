package certs

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"
)

var testPolicy = Policy{
	CAValidity:      60 * time.Minute,
	ServingValidity: 15 * time.Minute,
	DNSNames:        ServiceDNSNames("kubeplex-webhook-service", "kubeplex-system"),
	IPAddresses:     []net.IP{net.ParseIP("127.0.0.1")},
}

func mustRenew(t *testing.T, b Bundle, now time.Time, p Policy) Bundle {
	t.Helper()
	out, err := Renew(b, now, p)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	return out
}

func mustCert(t *testing.T, p []byte) *x509.Certificate {
	t.Helper()
	c, err := parseCert(p)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return c
}

func TestPlan(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	fresh := mustRenew(t, Bundle{}, t0, testPolicy)
	other := mustRenew(t, Bundle{}, t0, testPolicy)

	fewerNames := testPolicy
	fewerNames.IPAddresses = nil
	moreNames := testPolicy
	moreNames.DNSNames = append([]string{"other.example"}, testPolicy.DNSNames...)

	// The serving certificate ends at t0+15m and is due with 5 min left (t0+10m); the
	// CA ends at t0+30m and is due with 10 min left (t0+20m).
	tests := []struct {
		name                string
		b                   Bundle
		now                 time.Time
		p                   Policy
		wantCA, wantServing bool
	}{
		{"empty", Bundle{}, t0, testPolicy, true, true},
		{"fresh", fresh, t0, testPolicy, false, false},
		{"fresh, policy needs fewer names", fresh, t0, fewerNames, false, false},
		{"policy needs a new name", fresh, t0, moreNames, false, true},
		{"serving just before renewal", fresh, t0.Add(9 * time.Minute), testPolicy, false, false},
		{"serving due", fresh, t0.Add(11 * time.Minute), testPolicy, false, true},
		{"CA due", fresh, t0.Add(41 * time.Minute), testPolicy, true, true},
		{"all expired", fresh, t0.Add(48 * time.Hour), testPolicy, true, true},
		{"serving from another CA", Bundle{CACert: fresh.CACert, CAKey: fresh.CAKey, Cert: other.Cert, Key: other.Key}, t0, testPolicy, false, true},
		{"serving key mismatch", Bundle{CACert: fresh.CACert, CAKey: fresh.CAKey, Cert: fresh.Cert, Key: other.Key}, t0, testPolicy, false, true},
		{"CA key mismatch", Bundle{CACert: fresh.CACert, CAKey: other.CAKey, Cert: fresh.Cert, Key: fresh.Key}, t0, testPolicy, true, true},
		{"serving cert as CA", Bundle{CACert: fresh.Cert, CAKey: fresh.Key, Cert: fresh.Cert, Key: fresh.Key}, t0, testPolicy, true, true},
		{"garbage", Bundle{CACert: []byte("x"), CAKey: []byte("y"), Cert: []byte("z"), Key: []byte("w")}, t0, testPolicy, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, serving, why := Plan(tt.b, tt.now, tt.p)
			if ca != tt.wantCA || serving != tt.wantServing {
				t.Fatalf("Plan = CA %v serving %v (%q), want CA %v serving %v", ca, serving, why, tt.wantCA, tt.wantServing)
			}
			if (ca || serving) != (why != "") {
				t.Fatalf("reason %q does not match the decision", why)
			}
			if !ca && !serving {
				return
			}
			// Whatever was due, the renewed bundle must be valid and stable.
			r := mustRenew(t, tt.b, tt.now, tt.p)
			if ca, serving, why := Plan(r, tt.now, tt.p); ca || serving {
				t.Fatalf("renewed bundle still due: %s", why)
			}
		})
	}
}

func TestServingCertificate(t *testing.T) {
	t0 := time.Now().Truncate(time.Second) // x509 times have whole seconds
	b := mustRenew(t, Bundle{}, t0, testPolicy)
	ca := mustCert(t, b.CACert)
	leaf := mustCert(t, b.Cert)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range append(testPolicy.DNSNames, "127.0.0.1") {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: t0}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "evil.example", Roots: pool, CurrentTime: t0}); err == nil {
		t.Error("certificate verified for a name it must not cover")
	}
	if leaf.IsCA || !ca.IsCA {
		t.Errorf("IsCA: leaf %v, CA %v", leaf.IsCA, ca.IsCA)
	}
	if got, want := leaf.NotAfter.Sub(t0).Round(time.Second), testPolicy.ServingValidity; got != want {
		t.Errorf("serving validity %v, want %v", got, want)
	}

	// A serving certificate never outlives its CA.
	long := testPolicy
	long.ServingValidity = 10 * testPolicy.CAValidity
	b2 := mustRenew(t, Bundle{}, t0, long)
	if l, c := mustCert(t, b2.Cert), mustCert(t, b2.CACert); l.NotAfter.After(c.NotAfter) {
		t.Errorf("serving NotAfter %v after CA NotAfter %v", l.NotAfter, c.NotAfter)
	}
	// ... and a cut-short certificate is not due again at once (no renewal loop).
	if ca, serving, why := Plan(b2, t0.Add(time.Minute), long); ca || serving {
		t.Errorf("cut-short serving certificate due right after issue: %s", why)
	}
}

func TestRenewKeepsPreviousCA(t *testing.T) {
	t0 := time.Now().Truncate(time.Second) // x509 times have whole seconds
	b1 := mustRenew(t, Bundle{}, t0, testPolicy)

	// Serving renewal alone keeps the CA and adds nothing to the trust bundle.
	b2 := mustRenew(t, b1, t0.Add(11*time.Minute), testPolicy)
	if string(b2.CACert) != string(b1.CACert) || len(b2.PrevCA) != 0 {
		t.Fatal("serving renewal changed the CA")
	}
	if mustCert(t, b2.Cert).SerialNumber.Cmp(mustCert(t, b1.Cert).SerialNumber) == 0 {
		t.Fatal("serving certificate not replaced")
	}

	// CA renewal: the old CA moves to PrevCA and stays in the trust bundle while valid.
	now := t0.Add(41 * time.Minute)
	b3 := mustRenew(t, b2, now, testPolicy)
	if string(b3.CACert) == string(b2.CACert) || string(b3.PrevCA) != string(b2.CACert) {
		t.Fatal("CA renewal did not keep the previous CA")
	}
	if got := countCerts(b3.TrustBundle(now)); got != 2 {
		t.Fatalf("trust bundle during overlap has %d certificates, want 2", got)
	}
	if got := countCerts(b3.TrustBundle(t0.Add(61 * time.Minute))); got != 1 {
		t.Fatalf("trust bundle after the previous CA expired has %d certificates, want 1", got)
	}
	// Data round trip.
	if r := BundleFromData(b3.Data()); string(r.PrevCA) != string(b3.PrevCA) || string(r.Key) != string(b3.Key) {
		t.Fatal("Data/BundleFromData round trip lost material")
	}
}

func countCerts(p []byte) int {
	n := 0
	for {
		var block *pem.Block
		block, p = pem.Decode(p)
		if block == nil {
			return n
		}
		n++
	}
}
