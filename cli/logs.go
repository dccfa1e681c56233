package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

type logsOptions struct {
	*globals
	num         int
	tail        bool
	source      string
	dyno        string
	processType string
	json        bool
	forceColors bool
	routerURL   string
}

func newLogsCommand(g *globals) *cobra.Command {
	o := &logsOptions{globals: g}
	cmd := &cobra.Command{
		Use:   "logs APP",
		Short: "Show an app's recent log lines, and follow new ones with --tail",
		Long: `Show the newest lines of an app's log stream (history merged from every router
replica, oldest first) and, with --tail, keep streaming new lines until Ctrl-C.

Each line reads as in Heroku: TIME SOURCE[DYNO]: MESSAGE. A line with attributes (an
OpenTelemetry record's trace_id, span_id, resource.service.name, …) shows them after
the message as [key=value …]; --json has them in "attrs". On a terminal each process
has its own color; piped output has none. A dropped tail stream reconnects by itself
(a notice goes to stderr) without printing a line twice.

Reading an app's logs needs RBAC "create" (and "get") on logsessions in its namespace.`,
		Example: `  kubeplex logs web -n shop                 # the newest 100 lines
  kubeplex logs web -n shop --tail          # and follow
  kubeplex logs web -n shop -t -p worker    # follow worker.* only
  kubeplex logs web -n shop -d web.1 -s app --num 1500 --json
  kubectl kubeplex logs web -n shop -t`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), args[0]) },
	}
	f := cmd.Flags()
	f.IntVar(&o.num, "num", 100, fmt.Sprintf("number of history lines to show (0..%d)", MaxLines))
	f.BoolVarP(&o.tail, "tail", "t", false, "keep streaming new lines until Ctrl-C")
	f.StringVarP(&o.source, "source", "s", "", "only lines of this source (app, kubeplex, an add-on's name)")
	f.StringVarP(&o.dyno, "dyno", "d", "", "only lines of this process (web.1), or of a process type (web); alias --dyno-name")
	f.StringVarP(&o.processType, "process-type", "p", "", "only lines of this process type (web matches web.*)")
	f.BoolVar(&o.json, "json", false, "print one JSON object per line (time, source, dyno, message, notice)")
	f.BoolVar(&o.forceColors, "force-colors", false, "color the output even when it is not a terminal")
	f.StringVar(&o.routerURL, "router-url", "",
		"reach the router here instead of the session URL's host (e.g. a port-forward: http://127.0.0.1:8080)")
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "dyno-name" { // Heroku's older name for --dyno
			name = "dyno"
		}
		return pflag.NormalizedName(name)
	})
	return cmd
}

func (o *logsOptions) run(ctx context.Context, app string) error {
	if o.num < 0 || o.num > MaxLines {
		return fmt.Errorf("--num must be between 0 and %d, not %d", MaxLines, o.num)
	}
	dyno := o.dyno
	if o.processType != "" {
		if dyno != "" {
			return errors.New("--dyno and --process-type both filter the process: give one")
		}
		if strings.Contains(o.processType, ".") {
			return fmt.Errorf("--process-type %q is a process (use --dyno for web.1 style names)", o.processType)
		}
		dyno = o.processType
	}
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	p := &printer{out: bufio.NewWriter(o.out), errOut: o.err, json: o.json}
	p.color = !o.json && (o.forceColors || (isTerminal(o.out) && os.Getenv("NO_COLOR") == ""))
	t := &tailer{
		c: c, p: p, errOut: o.err, routerURL: o.routerURL,
		req: SessionRequest{Namespace: ns, App: app, Lines: o.num, Tail: o.tail, Source: o.source, Dyno: dyno},
	}
	err = t.run(ctx)
	if ctx.Err() != nil {
		return nil // Ctrl-C is how a tail ends
	}
	return err
}

// tailer opens sessions and, for a tail, opens a new one whenever the stream drops.
// It reads the router's event stream (docs/sessions.md) and prints lines itself, so
// it holds the stream's cursor: each replica's position, exactly. A new session
// resumes from it (?cursor=), and every replica sends the lines it got after that
// position, late lines with older times included, none twice.
type tailer struct {
	c         client.Client
	p         *printer
	errOut    io.Writer
	routerURL string
	req       SessionRequest
	http      *http.Client

	cursor   string // id of the newest event that had one
	resumed  bool   // the current stream resumes from cursor
	received bool   // the current stream sent an event
	history  int    // lines of the current stream before its tail event (-1: after it)
}

// reconnectFor is how long a dropped tail keeps trying before it gives up.
const reconnectFor = 5 * time.Minute

func (t *tailer) run(ctx context.Context) error {
	if t.http == nil {
		// No overall timeout: a tail lasts as long as the user wants it.
		t.http = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	req := t.req
	failingSince := time.Time{}
	delay := 250 * time.Millisecond
	for {
		sess, err := CreateSession(ctx, t.c, req)
		if err == nil {
			t.resumed = t.cursor != ""
			err = t.read(ctx, sess, t.cursor)
		}
		if ctx.Err() != nil || !t.req.Tail {
			return err
		}
		if isPermanent(err) {
			return err
		}
		if t.received {
			failingSince, delay = time.Time{}, 250*time.Millisecond
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) > reconnectFor {
			return fmt.Errorf("gave up reconnecting after %v: %w", reconnectFor, err)
		}
		notice(t.errOut, "kubeplex: tail stream dropped (%s); reconnecting\n", oneLine(errText(err)))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
		// The new session resumes at the cursor and may send as many lines as a
		// session holds: what came while the stream was down. Without a cursor
		// nothing was received yet, and the request starts over as it was.
		if t.cursor != "" {
			req.Lines = MaxLines
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "end of stream"
	}
	return err.Error()
}

// errSessionRefused is a router's 4xx answer to a session URL.
type errSessionRefused struct {
	status int
	reason string
}

func (e *errSessionRefused) Error() string {
	if strings.Contains(strings.ToLower(e.reason), "expired") {
		return "session expired: " + e.reason + " (it must be opened within its connect window; try again)"
	}
	return fmt.Sprintf("router refused the session (%d %s): %s", e.status, http.StatusText(e.status), e.reason)
}

// isPermanent says retrying with a new session cannot help.
func isPermanent(err error) bool {
	if errors.Is(err, ErrAppNotFound) {
		return true
	}
	if err != nil && strings.HasPrefix(err.Error(), "forbidden:") {
		return true
	}
	return false
}

// read streams one session to the printer until it ends, fails or ctx is done;
// cursor (an event id the router sent) says where to resume.
func (t *tailer) read(ctx context.Context, sess *Session, cursor string) error {
	u, err := WithRouterBase(sess.URL, t.routerURL)
	if err != nil {
		return err
	}
	pu, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("parse session URL: %w", err)
	}
	q := pu.Query()
	q.Set("format", "sse")
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	pu.RawQuery = q.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, pu.String(), nil)
	if err != nil {
		return fmt.Errorf("build session request: %w", err)
	}
	hreq.Header.Set("Accept", "text/event-stream")
	hreq.Header.Set("User-Agent", "kubeplex-cli")
	t.received, t.history = false, 0
	resp, err := t.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("router unreachable at %s: %w (if that address is cluster-internal, "+
			"port-forward the router Service and pass --router-url)", pu.Scheme+"://"+pu.Host, unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }() // read-only stream
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512)) // the reason, for the message
		return &errSessionRefused{status: resp.StatusCode, reason: oneLine(string(b))}
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var ev sseEvent
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && (err == nil || errors.Is(err, io.EOF)) {
			if done, perr := t.field(&ev, line); perr != nil || done {
				if ferr := t.p.flush(); perr == nil {
					perr = ferr
				}
				return perr
			}
		}
		if br.Buffered() == 0 {
			if ferr := t.p.flush(); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			if ferr := t.p.flush(); ferr != nil {
				return ferr
			}
			if errors.Is(err, io.EOF) {
				if t.req.Tail {
					return errors.New("the router closed the stream")
				}
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read session stream: %w", err)
		}
	}
}

// sseEvent is the Server-Sent Event being read (HTML Living Standard, "Parsing an
// event stream"): the router's events have one data line each.
type sseEvent struct {
	name  string
	data  []byte
	id    string
	hasID bool
}

// field reads one line of the event stream; a blank line dispatches the event. It
// reports done when the stream says it is complete (a session without tail).
func (t *tailer) field(ev *sseEvent, raw []byte) (done bool, err error) {
	raw = bytes.TrimRight(raw, "\r\n")
	if len(raw) == 0 {
		done, err = t.dispatch(ev)
		*ev = sseEvent{}
		return done, err
	}
	name, value, _ := bytes.Cut(raw, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	switch string(name) {
	case "": // a comment
	case "event":
		ev.name = string(value)
	case "data":
		if ev.data != nil {
			ev.data = append(ev.data, '\n')
		}
		ev.data = append(ev.data, value...)
	case "id":
		ev.id, ev.hasID = string(value), true
	}
	return false, nil
}

func (t *tailer) dispatch(ev *sseEvent) (done bool, err error) {
	if ev.hasID && ev.id != "" {
		// The id is the stream's cursor as of this event: every line before it,
		// and every line it passed over (dropped for a slow reader, announced).
		t.cursor = ev.id
	}
	switch ev.name {
	case "line":
		t.received = true
		if t.history >= 0 {
			t.history++
		}
		return false, t.p.line(ev.data)
	case "tail": // history is complete
		t.received = true
		if t.resumed && t.history >= MaxLines {
			notice(t.errOut, "kubeplex: lines may be missing (more arrived while disconnected than a session returns)\n")
		}
		t.history = -1
	case "end":
		return true, nil
	}
	return false, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Line is one log line as the session's JSON format carries it.
type Line struct {
	Time    string `json:"time"`
	Source  string `json:"source"`
	Dyno    string `json:"dyno"`
	Message string `json:"message"`
	Notice  string `json:"notice,omitempty"`
	Attrs   Attrs  `json:"attrs,omitempty"`
}

// Attrs are a line's attributes in the order the router sent them (docs/sessions.md:
// trace_id, span_id, … by name, resource.<name>, <SD-ID>.<name>).
type Attrs []Attr

// Attr is one attribute.
type Attr struct{ Key, Value string }

// UnmarshalJSON reads the "attrs" object keeping its order.
func (a *Attrs) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fmt.Errorf("attrs is not an object")
	}
	*a = (*a)[:0]
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("attrs: %w", err)
		}
		k, _ := tok.(string) // object keys are strings
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("attrs[%q]: %w", k, err)
		}
		*a = append(*a, Attr{k, v})
	}
	return nil
}

// text is the compact form "[k=v k=v]", values quoted when they hold a space, a
// quote, "=" or "]", or are empty; "" without attributes.
func (a Attrs) text() string {
	if len(a) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, kv := range a {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv.Key)
		b.WriteByte('=')
		if kv.Value == "" || strings.ContainsAny(kv.Value, " \t\n\"=]") || !strconv.CanBackquote(kv.Value) {
			b.WriteString(strconv.Quote(kv.Value))
		} else {
			b.WriteString(kv.Value)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// printer writes lines as text (optionally colored) or JSON.
type printer struct {
	out    *bufio.Writer
	errOut io.Writer
	json   bool
	color  bool
}

// line prints one line event's data, the JSON object of the JSON lines format.
func (p *printer) line(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var l Line
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("the router sent a line that is not JSON: %w", err)
	}
	if p.json {
		_, err := p.out.Write(append(raw, '\n'))
		return err
	}
	return p.text(&l)
}

func (p *printer) flush() error { return p.out.Flush() }

// ANSI colors for processes, chosen by a hash of the process name so a process keeps
// its color across runs.
var palette = []string{"36", "32", "33", "35", "34", "96", "92", "93", "95", "94"}

func (p *printer) text(l *Line) error {
	prefix := l.Time + " " + l.Source + "[" + l.Dyno + "]:"
	attrs := l.Attrs.text()
	if !p.color {
		if attrs != "" {
			attrs = " " + attrs
		}
		_, err := p.out.WriteString(prefix + " " + l.Message + attrs + "\n")
		return err
	}
	msg := l.Message
	if l.Notice != "" {
		msg = "\x1b[1;31m" + msg + "\x1b[0m" // platform loss notices stand out
	}
	if attrs != "" {
		attrs = " \x1b[2m" + attrs + "\x1b[0m" // dim: context, not the message
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(l.Source + "/" + l.Dyno)) // hash writes cannot fail
	c := palette[h.Sum32()%uint32(len(palette))]
	_, err := p.out.WriteString("\x1b[" + c + "m" + prefix + "\x1b[0m " + msg + attrs + "\n")
	return err
}
