package ingest

import (
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// scan3164 reads the BSD syslog form (RFC 3164 section 4.1) that nginx and many
// daemons send, "<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG", as the Fields of an
// RFC 5424 record. The timestamp has no year or zone; it is taken as UTC in the year
// that puts it nearest to now, and re-rendered in RFC 5424 form.
func scan3164(b []byte, now time.Time) (wire.Fields, error) {
	m, err := wire.ParseRFC3164(b, now, time.UTC)
	if err != nil {
		return wire.Fields{}, err
	}
	f := wire.Fields{Priority: m.Priority, Hostname: m.Hostname, AppName: m.Tag, ProcID: m.PID, Text: m.Content}
	if !m.Time.IsZero() {
		f.Timestamp = wire.AppendTimestamp(nil, m.Time)
	}
	return f, nil
}
