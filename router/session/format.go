package session

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

type format int

const (
	formatText format = iota
	formatJSON
	formatSSE
	formatHTML
)

func (f format) name() string {
	return [...]string{"text", "json", "sse", "html"}[f]
}

func (f format) contentType() string {
	return [...]string{"text/plain; charset=utf-8", "application/x-ndjson", "text/event-stream", "text/html; charset=utf-8"}[f]
}

var errFormat = errors.New("unknown format; use text, json, sse or html")

// negotiate picks the format: ?format= wins, then the first media type of Accept
// that is known (browsers list text/html first, EventSource sends
// text/event-stream, curl sends */*), then text/plain.
func negotiate(r *http.Request) (format, error) {
	if q := r.URL.Query().Get("format"); q != "" {
		switch q {
		case "text":
			return formatText, nil
		case "json":
			return formatJSON, nil
		case "sse":
			return formatSSE, nil
		case "html":
			return formatHTML, nil
		}
		return 0, errFormat
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/event-stream":
			return formatSSE, nil
		case "application/x-ndjson", "application/json":
			return formatJSON, nil
		case "text/html":
			return formatHTML, nil
		case "text/plain", "text/*", "*/*":
			return formatText, nil
		}
	}
	return formatText, nil
}

// jsonLine is one line in JSON lines and in SSE "line" events.
type jsonLine struct {
	Time    string `json:"time"`
	Source  string `json:"source"`
	Dyno    string `json:"dyno"`
	Message string `json:"message"`
	Notice  string `json:"notice,omitempty"`
}

// encoder appends records in one format; last is the newest cursor written.
type encoder struct {
	f    format
	buf  []byte
	last int64
	ts   []byte
}

func (e *encoder) record(rec []byte) {
	m, err := message.Decode(rec)
	if err != nil {
		return
	}
	if m.Time > e.last {
		e.last = m.Time
	}
	switch e.f {
	case formatText:
		e.buf = message.AppendText(e.buf, &m)
		e.buf = append(e.buf, '\n')
	case formatJSON:
		e.buf = e.appendJSON(e.buf, &m)
		e.buf = append(e.buf, '\n')
	case formatSSE:
		e.buf = append(e.buf, "id: "...)
		e.buf = strconv.AppendInt(e.buf, m.Time, 10)
		e.buf = append(e.buf, "\nevent: line\ndata: "...)
		e.buf = e.appendJSON(e.buf, &m)
		e.buf = append(e.buf, "\n\n"...)
	}
}

func (e *encoder) appendJSON(dst []byte, m *message.Msg) []byte {
	e.ts = wire.AppendTimestamp(e.ts[:0], time.UnixMicro(m.Time).UTC())
	l := jsonLine{Time: string(e.ts), Source: string(m.Source), Dyno: string(m.ProcID), Message: string(m.Text), Notice: notice(m)}
	b, _ := json.Marshal(&l) // strings only; invalid UTF-8 becomes U+FFFD
	return append(dst, b...)
}

// notice names the platform notice a line is ("L11"), or "".
func notice(m *message.Msg) string {
	if string(m.Source) != message.SourcePlatform {
		return ""
	}
	t := m.Text
	if len(t) < 10 || string(t[:7]) != "Error L" || t[7] != '1' || t[8] < '0' || t[8] > '9' || t[9] != ' ' {
		return ""
	}
	return string(t[6:9])
}

func (e *encoder) session(url string, exp time.Time) {
	if e.f != formatSSE {
		return
	}
	b, _ := json.Marshal(struct {
		URL       string `json:"url"`
		ExpiresAt string `json:"expiresAt"`
	}{url, exp.UTC().Format(time.RFC3339)})
	e.buf = append(e.buf, "event: session\ndata: "...)
	e.buf = append(e.buf, b...)
	e.buf = append(e.buf, "\n\n"...)
}

func (e *encoder) end() {
	if e.f == formatSSE {
		e.buf = append(e.buf, "event: end\ndata: {}\n\n"...)
	}
}

// parseCursor reads an SSE id (µs since the epoch).
func parseCursor(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}
