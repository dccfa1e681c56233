package routing

import (
	"maps"
	"slices"
)

// Equal reports whether a and b route alike: every field the same, in the same
// order. A reader that keeps what it applied compares an app with it to skip the
// apps a change did not touch.
func (a *App) Equal(b *App) bool {
	if a.ID != b.ID || a.History != b.History || len(a.Tokens) != len(b.Tokens) || len(a.Drains) != len(b.Drains) ||
		!slices.Equal(a.Hosts, b.Hosts) {
		return false
	}
	// By index, not slices.EqualFunc: that copies both elements for each call, and
	// a router compares every app of the table on every change.
	for i := range a.Tokens {
		if !a.Tokens[i].Equal(&b.Tokens[i]) {
			return false
		}
	}
	for i := range a.Drains {
		if !a.Drains[i].Equal(&b.Drains[i]) {
			return false
		}
	}
	return true
}

// Clone returns a copy of a that shares nothing mutable with it (strings are).
func (a *App) Clone() App {
	c := *a
	c.Tokens = slices.Clone(a.Tokens)
	for i := range c.Tokens {
		c.Tokens[i].AllowedSources = slices.Clone(c.Tokens[i].AllowedSources)
		if t := c.Tokens[i].NotAfter; t != nil {
			na := *t
			c.Tokens[i].NotAfter = &na
		}
	}
	c.Hosts = slices.Clone(a.Hosts)
	c.Drains = slices.Clone(a.Drains)
	for i := range c.Drains {
		c.Drains[i].Headers = maps.Clone(c.Drains[i].Headers)
		if t := c.Drains[i].TLS; t != nil {
			tls := *t
			c.Drains[i].TLS = &tls
		}
	}
	return c
}

// Equal reports whether two tokens are the same credential with the same grants.
func (t *Token) Equal(o *Token) bool {
	if t.SHA256 != o.SHA256 || t.Token != o.Token || t.Source != o.Source || t.Collector != o.Collector ||
		!slices.Equal(t.AllowedSources, o.AllowedSources) || (t.NotAfter == nil) != (o.NotAfter == nil) {
		return false
	}
	// The same zone too: the table's JSON writes the offset, and the manager's
	// Encoder reuses an Equal app's encoding.
	return t.NotAfter == nil || t.NotAfter.Equal(*o.NotAfter) && t.NotAfter.Location() == o.NotAfter.Location()
}

// Equal reports whether two drains are the same in every field.
func (d *Drain) Equal(o *Drain) bool {
	if d.ID != o.ID || d.Token != o.Token || d.URL != o.URL || d.Username != o.Username || d.Password != o.Password ||
		d.HMACKey != o.HMACKey || d.Compression != o.Compression || !maps.Equal(d.Headers, o.Headers) ||
		(d.TLS == nil) != (o.TLS == nil) {
		return false
	}
	return d.TLS == nil || *d.TLS == *o.TLS
}
