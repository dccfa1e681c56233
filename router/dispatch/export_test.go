package dispatch

// WaitRemoved waits until the drains removed from the table so far have stopped, so
// a test can assert what they did not deliver without sleeping.
func WaitRemoved(d *Dispatcher) { d.removing.Wait() }
