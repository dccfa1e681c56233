package syslog

// HungUp reports whether the reader of the sink's current connection has seen the
// receiver hang up, so a test can wait for that instead of sleeping. The caller must
// have synchronized with the runner (for example by reading its stats) since the
// connection was made.
func HungUp(s *Sink) bool { return s.dead != nil && s.dead.Load() }
