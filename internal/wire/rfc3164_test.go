package wire

import (
	"bytes"
	"testing"
	"time"
)

func TestParseRFC3164(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name                    string
		in                      string
		pri                     uint8
		time                    time.Time
		host, tag, pid, content string
		wantErr                 bool
	}{
		{name: "full header", in: "<34>Oct 11 22:14:15 mymachine su: 'su root' failed",
			pri: 34, time: time.Date(2026, 10, 11, 22, 14, 15, 0, time.UTC), host: "mymachine", tag: "su", content: "'su root' failed"},
		{name: "pid", in: "<13>Nov 25 09:59:00 host app[123]: hello world",
			pri: 13, time: time.Date(2026, 11, 25, 9, 59, 0, 0, time.UTC), host: "host", tag: "app", pid: "123", content: "hello world"},
		{name: "no hostname (glibc syslog)", in: "<14>Nov  5 01:02:03 app[9]: local",
			pri: 14, time: time.Date(2026, 11, 5, 1, 2, 3, 0, time.UTC), tag: "app", pid: "9", content: "local"},
		{name: "no header (python SysLogHandler)", in: "<14>just a message", pri: 14, content: "just a message"},
		{name: "tag only", in: "<14>worker: started", pri: 14, tag: "worker", content: "started"},
		{name: "december stamp read in january", in: "<14>Dec 31 23:59:59 h t: x", pri: 14,
			time: time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC), host: "h", tag: "t", content: "x"},
		{name: "bad stamp is content", in: "<14>Foo 31 23:59:59 x", pri: 14, content: "Foo 31 23:59:59 x"},
		{name: "empty message", in: "<0>", pri: 0, content: ""},
		{name: "max pri", in: "<191>x", pri: 191, content: "x"},
		{name: "pri too large", in: "<192>x", wantErr: true},
		{name: "leading zero", in: "<013>x", wantErr: true},
		{name: "no pri", in: "hello", wantErr: true},
		{name: "unterminated pri", in: "<13", wantErr: true},
		{name: "nginx", in: "<190>Nov 25 10:00:00 ingress-1 nginx: GET / 200",
			pri: 190, time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), host: "ingress-1", tag: "nginx", content: "GET / 200"},
		{name: "unprintable hostname stays in the message", in: "<13>Nov 25 10:00:00 h\x01st app: x",
			pri: 13, time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC), content: "h\x01st app: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := now
			if tt.name == "december stamp read in january" {
				ref = time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)
			}
			m, err := ParseRFC3164([]byte(tt.in), ref, time.UTC)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if m.Priority != tt.pri || !m.Time.Equal(tt.time) || string(m.Hostname) != tt.host ||
				string(m.Tag) != tt.tag || string(m.PID) != tt.pid || string(m.Content) != tt.content {
				t.Errorf("got pri %d time %v host %q tag %q pid %q content %q", m.Priority, m.Time, m.Hostname, m.Tag, m.PID, m.Content)
			}
		})
	}
}

// FuzzParseRFC3164: no input panics; accepted messages have a valid PRI, a printable
// hostname, a tag of at most 48 bytes, and fields that are views of the input.
func FuzzParseRFC3164(f *testing.F) {
	for _, s := range []string{"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", "<14>app[1]: x",
		"<14>Nov  5 01:02:03 app[9]: local", "<0>", "<191>Dec 31 23:59:60 h t[", "<1>a[b]:",
		"<190>Nov 25 10:00:00 ingress-1 nginx: GET / 200", "<13>Jan  2 00:00:01 web sshd[42]: x", "<1>a[b"} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseRFC3164(b, now, time.UTC)
		if err != nil {
			return
		}
		if m.Priority > 191 {
			t.Fatalf("priority %d", m.Priority)
		}
		for _, field := range [][]byte{m.Hostname, m.Tag, m.PID, m.Content} {
			if len(field) > 0 && !bytes.Contains(b, field) {
				t.Fatalf("field %q not from input %q", field, b)
			}
		}
		for _, c := range m.Hostname {
			if c < '!' || c > '~' {
				t.Fatalf("hostname %q has a non-printable byte", m.Hostname)
			}
		}
		if len(m.Tag) > 48 {
			t.Fatalf("tag %q too long", m.Tag)
		}
		if !bytes.HasSuffix(b, m.Content) {
			t.Fatalf("content %q is not the tail of %q", m.Content, b)
		}
	})
}
