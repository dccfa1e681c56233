package dispatch

import "crypto/sha256"

// WaitRemoved waits until the drains removed from the table so far have stopped, so
// a test can assert what they did not deliver without sleeping.
func WaitRemoved(d *Dispatcher) { d.removing.Wait() }

// Lookup finds tokens and hosts in one snapshot, and names the version it holds, so
// a test can tell a mix of tables from a table swapped between two lookups.
func Lookup(d *Dispatcher, tokens, hosts []string) (version string, apps []string) {
	s := d.snap.Load()
	for _, tok := range tokens {
		id := ""
		if r, ok := s.tokens[sha256.Sum256([]byte(tok))]; ok {
			id = r.App.ID
		}
		apps = append(apps, id)
	}
	for _, h := range hosts {
		id := ""
		if a, ok := s.hosts[h]; ok {
			id = a.ID
		}
		apps = append(apps, id)
	}
	return s.version, apps
}
