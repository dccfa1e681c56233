package wire

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/influxdata/go-syslog/v3/rfc5424"
)

// Field limits from RFC 5424 section 6.
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
)

// Priorities used by kubeplex producers: facility local7 (23), as Logplex and
// log-shuttle use, with severity info for stdout and error for stderr.
const (
	PriorityInfo    uint8 = 23*8 + 6 // 190
	PriorityWarning uint8 = 23*8 + 4 // 188
	PriorityError   uint8 = 23*8 + 3 // 187
)

// TimeLayout is RFC 3339 with microseconds and a numeric offset, as Logplex writes it
// (2026-11-25T10:00:00.123456+00:00).
const TimeLayout = "2006-01-02T15:04:05.000000-07:00"

// Message is one RFC 5424 record. Empty header fields are written as the nil value
// "-".
type Message struct {
	Priority uint8
	Time     time.Time
	Hostname string
	AppName  string
	ProcID   string
	MsgID    string
	// StructuredData is a valid SD-ELEMENT list, written as is: one Scan returned,
	// or one built with AppendSDParam. Empty means none ("-").
	StructuredData []byte
	Text           []byte
}

// AppendRFC5424 appends m as an RFC 5424 record (no framing, no trailing newline).
// Header fields are clipped to their RFC length and characters outside printable
// US-ASCII are replaced with '_', so any input yields a record that parses.
func AppendRFC5424(dst []byte, m *Message) []byte {
	pri := m.Priority
	if pri > 191 {
		pri = PriorityInfo
	}
	dst = append(dst, '<')
	dst = strconv.AppendUint(dst, uint64(pri), 10)
	dst = append(dst, '>', '1', ' ')
	if m.Time.IsZero() {
		dst = append(dst, '-')
	} else {
		dst = AppendTimestamp(dst, m.Time)
	}
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, m.Hostname, maxHostname)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, m.AppName, maxAppName)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, m.ProcID, maxProcID)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, m.MsgID, maxMsgID)
	dst = append(dst, ' ')
	if len(m.StructuredData) == 0 {
		dst = append(dst, '-')
	} else {
		dst = append(dst, m.StructuredData...)
	}
	if len(m.Text) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, m.Text...)
	}
	return dst
}

// AppendHeaderField appends s as AppendRFC5424 writes a header field: "-" when empty,
// clipped to limit bytes, characters outside printable US-ASCII replaced with '_'.
func AppendHeaderField(dst []byte, s string, limit int) []byte {
	return appendHeaderField(dst, s, limit)
}

func appendHeaderField(dst []byte, s string, limit int) []byte {
	if s == "" {
		return append(dst, '-')
	}
	if len(s) > limit {
		s = s[:limit]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// Parse decodes an RFC 5424 record with go-syslog, the strict reference parser. It
// leaves StructuredData empty: go-syslog keeps SD as maps, without their order.
// It is the choice for input that needs every field validated; the router's hot path
// uses Scan, whose results agree with Parse on every record Parse accepts (fuzzed).
func Parse(record []byte) (Message, error) {
	p := rfc5424.NewParser()
	sm, err := p.Parse(record)
	if err != nil {
		return Message{}, fmt.Errorf("parse rfc5424 record: %w", err)
	}
	msg, ok := sm.(*rfc5424.SyslogMessage)
	if !ok || msg.Priority == nil {
		return Message{}, errors.New("parse rfc5424 record: no priority")
	}
	m := Message{Priority: *msg.Priority}
	if msg.Timestamp != nil {
		m.Time = *msg.Timestamp
	}
	m.Hostname = deref(msg.Hostname)
	m.AppName = deref(msg.Appname)
	m.ProcID = deref(msg.ProcID)
	m.MsgID = deref(msg.MsgID)
	if msg.Message != nil {
		m.Text = []byte(*msg.Message)
	}
	return m, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
