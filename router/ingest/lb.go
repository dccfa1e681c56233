package ingest

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Load-balancer lines: ingress-nginx access logs that reach the router over syslog
// with no token. Whoever reaches the port can send anything, so nothing of the
// sender's framing is believed: a record is filed only when its text parses as an
// access log (nginx's combined format, ingress-nginx's default upstream format, or
// the JSON format of docs/sources.md) whose virtual host is one of an app's hosts,
// and it is re-written in Heroku's router form
//
//	at=info method=GET path="/cart" host=shop.example.com request_id=… fwd="10.0.0.1" service=12ms status=200 bytes=512 protocol=http
//
// under source kubeplex, process router. Free text, and with it forged "Error L10"
// notices or process events, has no way in.

// accessLog is the part of an access-log line the router form shows.
type accessLog struct {
	host, method, path, proto, fwd, requestID []byte
	status, bytes                             []byte
	serviceMS                                 int64 // -1 when unknown
}

// parseAccessLog reads one access-log line, text or JSON.
func parseAccessLog(text []byte) (accessLog, bool) {
	text = bytes.TrimSpace(text)
	if len(text) > 0 && text[0] == '{' {
		return parseAccessJSON(text)
	}
	return parseAccessText(text)
}

// parseAccessText reads
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//
// (nginx's combined), optionally followed by ingress-nginx's default upstream fields
// ($request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name]
// $upstream_addr $upstream_response_length $upstream_response_time $upstream_status
// $req_id), and a host=NAME field anywhere after them (the ConfigMap snippet in
// docs/sources.md appends it: neither default format names the virtual host).
func parseAccessText(text []byte) (accessLog, bool) {
	var a accessLog
	a.serviceMS = -1
	rest := text
	var ok bool
	if a.fwd, rest, ok = word(rest); !ok {
		return a, false
	}
	if _, rest, ok = word(rest); !ok { // "-"
		return a, false
	}
	if _, rest, ok = word(rest); !ok { // remote user
		return a, false
	}
	if _, rest, ok = delimited(rest, '[', ']'); !ok { // local time
		return a, false
	}
	var request []byte
	if request, rest, ok = delimited(rest, '"', '"'); !ok {
		return a, false
	}
	parts := bytes.Fields(request)
	if len(parts) != 3 {
		return a, false
	}
	a.method, a.path, a.proto = parts[0], parts[1], parts[2]
	if a.status, rest, ok = word(rest); !ok || !digits(a.status) || len(a.status) != 3 {
		return a, false
	}
	if a.bytes, rest, ok = word(rest); !ok || !digits(a.bytes) {
		return a, false
	}
	if _, rest, ok = delimited(rest, '"', '"'); !ok { // referer
		return a, false
	}
	if _, rest, ok = delimited(rest, '"', '"'); !ok { // user agent
		return a, false
	}
	// ingress-nginx's default upstream fields, when present.
	f := bytes.Fields(rest)
	if len(f) >= 9 && digits(f[0]) && bytes.HasPrefix(f[2], []byte("[")) && bytes.HasPrefix(f[3], []byte("[")) {
		// f[4..8]: upstream address, response length, response time, status, request id.
		if a.serviceMS = millis(f[6]); a.serviceMS < 0 {
			a.serviceMS = millis(f[1]) // $request_time
		}
		a.requestID = f[8]
	}
	a.host = vhost(rest)
	return a, len(a.host) > 0
}

// accessJSON is the JSON access-log format: the ingress-nginx ConfigMap snippet in
// docs/sources.md writes exactly these keys (log-format-escape-json).
type accessJSON struct {
	Host                 string `json:"host"`
	Method               string `json:"method"`
	Path                 string `json:"path"`
	Protocol             string `json:"protocol"`
	Status               any    `json:"status"`
	BytesSent            any    `json:"bytes_sent"`
	RequestTime          any    `json:"request_time"`
	UpstreamResponseTime any    `json:"upstream_response_time"`
	RemoteAddr           string `json:"remote_addr"`
	XForwardedFor        string `json:"x_forwarded_for"`
	RequestID            string `json:"request_id"`
}

func parseAccessJSON(text []byte) (accessLog, bool) {
	var j accessJSON
	a := accessLog{serviceMS: -1}
	if err := json.Unmarshal(text, &j); err != nil || j.Host == "" || j.Method == "" || j.Path == "" {
		return a, false
	}
	a.host, a.method, a.path, a.proto = []byte(j.Host), []byte(j.Method), []byte(j.Path), []byte(j.Protocol)
	a.status, a.bytes = jsonNumber(j.Status), jsonNumber(j.BytesSent)
	if !digits(a.status) || len(a.status) != 3 {
		return a, false
	}
	if !digits(a.bytes) {
		a.bytes = []byte("0")
	}
	a.fwd = []byte(j.RemoteAddr)
	if j.XForwardedFor != "" && j.XForwardedFor != "-" {
		a.fwd = []byte(j.XForwardedFor)
	}
	a.requestID = []byte(j.RequestID)
	if a.serviceMS = millis(jsonNumber(j.UpstreamResponseTime)); a.serviceMS < 0 {
		a.serviceMS = millis(jsonNumber(j.RequestTime))
	}
	return a, true
}

// appendRouterLine writes a in Heroku's router form.
func appendRouterLine(dst []byte, a *accessLog) []byte {
	dst = append(dst, "at=info method="...)
	dst = appendSafe(dst, a.method)
	dst = append(dst, " path="...)
	dst = strconv.AppendQuote(dst, string(a.path))
	dst = append(dst, " host="...)
	dst = appendSafe(dst, a.host)
	if len(a.requestID) > 0 && string(a.requestID) != "-" {
		dst = append(dst, " request_id="...)
		dst = appendSafe(dst, a.requestID)
	}
	dst = append(dst, " fwd="...)
	dst = strconv.AppendQuote(dst, string(a.fwd))
	if a.serviceMS >= 0 {
		dst = append(dst, " service="...)
		dst = strconv.AppendInt(dst, a.serviceMS, 10)
		dst = append(dst, "ms"...)
	}
	dst = append(dst, " status="...)
	dst = append(dst, a.status...)
	dst = append(dst, " bytes="...)
	dst = append(dst, a.bytes...)
	if p := bytes.ToLower(a.proto); bytes.HasPrefix(p, []byte("http/")) || bytes.HasPrefix(p, []byte("h2")) {
		dst = append(dst, " protocol=http"...)
	}
	return dst
}

// appendSafe writes an unquoted value, with anything that could end the field or
// start another (space, quote, '=', control bytes) replaced by '_'.
func appendSafe(dst, v []byte) []byte {
	for _, c := range v {
		if c <= ' ' || c == '"' || c == '=' || c >= 0x7f {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

func word(b []byte) (w, rest []byte, ok bool) {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 {
		return nil, nil, false
	}
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, true
}

func delimited(b []byte, open, end byte) (v, rest []byte, ok bool) {
	b = bytes.TrimLeft(b, " ")
	if len(b) == 0 || b[0] != open {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // nginx escapes quotes inside quoted fields as \x22 or \"
		case end:
			return b[1:i], b[i+1:], true
		}
	}
	return nil, nil, false
}

func digits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// millis turns nginx's seconds with millisecond resolution ("0.012", or "0.010, 0.002"
// for retried upstreams: the last is the one that answered) into milliseconds.
func millis(b []byte) int64 {
	if i := bytes.LastIndexByte(b, ','); i >= 0 {
		b = bytes.TrimSpace(b[i+1:])
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 {
		return -1
	}
	return int64(f*1000 + 0.5)
}

func jsonNumber(v any) []byte {
	switch x := v.(type) {
	case float64:
		return strconv.AppendFloat(nil, x, 'f', -1, 64)
	case string:
		return []byte(x)
	}
	return nil
}
