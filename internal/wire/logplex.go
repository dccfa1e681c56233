package wire

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// logplex-1 names: content type and headers, as Logplex and log-shuttle use them.
const (
	ContentType       = "application/logplex-1"
	ContentTypeLegacy = "application/x-logplex-1"

	HeaderMsgCount   = "Logplex-Msg-Count"
	HeaderFrameID    = "Logplex-Frame-Id"
	HeaderDrainToken = "Logplex-Drain-Token"
	HeaderDropCount  = "Logplex-Drop-Count"
	HeaderLostCount  = "Logplex-Lost-Count"
	HeaderRequestID  = "X-Request-Id"

	// HeaderPod and HeaderNode name the pod and node a collector runs in, once per
	// POST rather than on each line: the router gives them to the drains that carry
	// them (OTLP: k8s.pod.name, k8s.node.name), and takes them only from a collector
	// credential.
	HeaderPod  = "Kubeplex-Pod"
	HeaderNode = "Kubeplex-Node"
)

// KubeName reports whether s can be a Kubernetes object name (a DNS subdomain:
// 1 to 253 bytes of lower-case letters, digits, '-' and '.'), as pod and node names are.
func KubeName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// DefaultMaxBody bounds an ingest body, compressed or not. log-shuttle sends at most
// 500 lines per batch; 500 × 10 KB lines is 5 MB.
const DefaultMaxBody = 8 << 20

// BatchError is a request the sender must fix; Reason is the text for a 400 answer.
type BatchError struct {
	Reason string
	Err    error
}

func (e *BatchError) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *BatchError) Unwrap() error { return e.Err }

// Reasons a logplex-1 batch is refused; the first two are Logplex's own texts.
const (
	ReasonMalformed   = "Malformed log messages"
	ReasonCount       = "Message count mismatch"
	ReasonContentType = "Unsupported content type"
	ReasonEncoding    = "Unsupported content encoding"
	ReasonTooLarge    = "Request body too large"
	// ReasonFrameTooLarge: one frame is over the receiver's frame limit (refused before
	// it is read); the batch is well-formed but too big to take, not malformed.
	ReasonFrameTooLarge = "Frame too large"
)

// Batch is a decoded logplex-1 request.
type Batch struct {
	// Records are views into Body, one per frame, in order.
	Records [][]byte
	// FrameID is Logplex-Frame-Id, or X-Request-Id when absent (log-shuttle).
	FrameID string
	// DropCount and LostCount are what a log-shuttle-like sender reported losing.
	DropCount, LostCount int
	// Body is the (decompressed) body the records point into.
	Body []byte
}

// ReadBatch reads and checks a logplex-1 request: content type, gzip, octet-counted
// frames (each a syntactically valid RFC 5424 record) and Logplex-Msg-Count. Either the
// whole batch is returned or a *BatchError; nothing is half-accepted. buf is reused for
// the body when large enough.
func ReadBatch(req *http.Request, maxBody, maxFrame int, buf []byte) (*Batch, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != ContentType && mt != ContentTypeLegacy) {
			return nil, &BatchError{Reason: ReasonContentType, Err: fmt.Errorf("got %q", ct)}
		}
	}
	var body io.Reader = req.Body
	switch enc := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, &BatchError{Reason: ReasonMalformed, Err: fmt.Errorf("gzip: %w", err)}
		}
		// gzip.Reader.Close only reports an earlier read error, which ReadFrom below sees.
		defer func() { _ = zr.Close() }()
		body = zr
	default:
		return nil, &BatchError{Reason: ReasonEncoding, Err: fmt.Errorf("got %q", enc)}
	}
	// Read one byte past the limit to tell "exactly the limit" from "over it"; the same
	// bound applies after decompression, so a gzip bomb stops at maxBody.
	w := bytes.NewBuffer(buf[:0])
	n, err := w.ReadFrom(io.LimitReader(body, int64(maxBody)+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &BatchError{Reason: ReasonTooLarge, Err: err}
		}
		return nil, &BatchError{Reason: ReasonMalformed, Err: fmt.Errorf("read body: %w", err)}
	}
	if n > int64(maxBody) {
		return nil, &BatchError{Reason: ReasonTooLarge, Err: fmt.Errorf("limit %d bytes", maxBody)}
	}
	b := &Batch{Body: w.Bytes(), FrameID: req.Header.Get(HeaderFrameID)}
	if b.FrameID == "" {
		b.FrameID = req.Header.Get(HeaderRequestID)
	}
	b.DropCount, _ = strconv.Atoi(req.Header.Get(HeaderDropCount))
	b.LostCount, _ = strconv.Atoi(req.Header.Get(HeaderLostCount))
	_, err = SplitFrames(b.Body, maxFrame, func(rec []byte) error {
		if _, err := Scan(rec); err != nil {
			return err
		}
		b.Records = append(b.Records, rec)
		return nil
	})
	if errors.Is(err, ErrFrameTooLarge) {
		return nil, &BatchError{Reason: ReasonFrameTooLarge, Err: err}
	}
	if err != nil {
		return nil, &BatchError{Reason: ReasonMalformed, Err: err}
	}
	if hc := req.Header.Get(HeaderMsgCount); hc != "" {
		want, err := strconv.Atoi(strings.TrimSpace(hc))
		if err != nil || want != len(b.Records) {
			return nil, &BatchError{Reason: ReasonCount,
				Err: fmt.Errorf("header says %q, body has %d", hc, len(b.Records))}
		}
	}
	return b, nil
}

// RequestToken returns the token a producer authenticated with: the Basic auth password
// (log-shuttle sends user "token"), or a Bearer token.
func RequestToken(req *http.Request) (string, bool) {
	if _, pass, ok := req.BasicAuth(); ok && pass != "" {
		return pass, true
	}
	auth := req.Header.Get("Authorization")
	if len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
		if tok := strings.TrimSpace(auth[7:]); tok != "" {
			return tok, true
		}
	}
	return "", false
}

// BatchRequest describes one outgoing logplex-1 POST.
type BatchRequest struct {
	URL        string
	Body       []byte // octet-counted frames
	Count      int
	FrameID    string
	DrainToken string
	UserAgent  string
	// Username and Password set Basic auth when either is non-empty.
	Username, Password string
	// Gzip compresses the body.
	Gzip bool
}

// NewRequest builds the HTTP request for r. The body is replayable (GetBody is set), so
// a retry re-sends the same bytes under the same frame id.
func (r *BatchRequest) NewRequest(ctx context.Context) (*http.Request, error) {
	body := r.Body
	if r.Gzip {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		if _, err := zw.Write(body); err != nil {
			return nil, fmt.Errorf("gzip batch: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip batch: %w", err)
		}
		body = zb.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build logplex request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", ContentType)
	h.Set(HeaderMsgCount, strconv.Itoa(r.Count))
	if r.FrameID != "" {
		h.Set(HeaderFrameID, r.FrameID)
	}
	if r.DrainToken != "" {
		h.Set(HeaderDrainToken, r.DrainToken)
	}
	if r.UserAgent != "" {
		h.Set("User-Agent", r.UserAgent)
	}
	if r.Gzip {
		h.Set("Content-Encoding", "gzip")
	}
	if r.Username != "" || r.Password != "" {
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(r.Username+":"+r.Password)))
	}
	return req, nil
}
