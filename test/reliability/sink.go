package reliability

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Answer is what the scripted HTTP sink does with one request.
type Answer struct {
	Code int
	// Hang up after reading the body, without answering: the router cannot know
	// whether the batch arrived and retries it under the same frame id.
	HangUp bool
	// Delay holds the answer back: a slow receiver, so the router's queue fills.
	Delay time.Duration
}

// Post is one request the HTTP sink received.
type Post struct {
	FrameID string
	Texts   []string
	Answer  Answer
}

// HTTPSink is a logplex-1 receiver whose n-th answer Script chooses (nil: 200).
type HTTPSink struct {
	URL    string
	Script func(n int) Answer

	srv   *httptest.Server
	mu    sync.Mutex
	posts []Post
}

// NewHTTPSink starts the sink on 127.0.0.1.
func NewHTTPSink(script func(n int) Answer) *HTTPSink {
	s := &HTTPSink{Script: script}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the sink.
func (s *HTTPSink) Close() { s.srv.Close() }

func (s *HTTPSink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p := Post{FrameID: r.Header.Get(wire.HeaderFrameID), Answer: Answer{Code: 200}}
	_, _ = wire.SplitFrames(body, 1<<20, func(rec []byte) error {
		if m, err := wire.Parse(rec); err == nil {
			p.Texts = append(p.Texts, string(m.Text))
		}
		return nil
	})
	s.mu.Lock()
	if s.Script != nil {
		p.Answer = s.Script(len(s.posts))
	}
	s.posts = append(s.posts, p)
	s.mu.Unlock()
	time.Sleep(p.Answer.Delay)
	if p.Answer.HangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
	}
	w.WriteHeader(p.Answer.Code)
}

// Posts returns what arrived so far.
func (s *HTTPSink) Posts() []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Post(nil), s.posts...)
}

// Accepted returns the texts of the posts answered 2xx, each frame id once.
func (s *HTTPSink) Accepted() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range s.Posts() {
		if p.Answer.HangUp || p.Answer.Code/100 != 2 || seen[p.FrameID] {
			continue
		}
		seen[p.FrameID] = true
		out = append(out, p.Texts...)
	}
	return out
}

// CrossFrameDuplicates counts lines that arrived under two different frame ids: a
// retry must reuse its frame id, so any such line is a real duplicate.
func (s *HTTPSink) CrossFrameDuplicates() int {
	first := map[string]string{}
	n := 0
	for _, p := range s.Posts() {
		for _, t := range p.Texts {
			if id, ok := first[t]; ok && id != p.FrameID {
				n++
				continue
			}
			first[t] = p.FrameID
		}
	}
	return n
}
