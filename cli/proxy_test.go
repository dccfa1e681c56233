package cli_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy forwards TCP to a router and can cut every connection and refuse new
// ones, which is what a dropped network path looks like to a client.
type cutProxy struct {
	ln     net.Listener
	target string
	hold   chan struct{} // when set, new connections wait for it to close

	mu     sync.Mutex
	refuse bool
	conns  map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { _ = ln.Close(); p.cut() }) // ends the accept loop
	go p.serve()
	return p
}

func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse, hold := p.refuse, p.hold
		p.mu.Unlock()
		if refuse {
			_ = c.Close() // refused: the client sees a reset or EOF
			continue
		}
		go p.forward(c, hold)
	}
}

func (p *cutProxy) forward(c net.Conn, hold chan struct{}) {
	if hold != nil {
		<-hold // a path that delivers late, for the expiry test
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }() // copy errors end the pair
	_, _ = io.Copy(c, up)
	_ = c.Close()
}

// cut closes every forwarded connection; with refuse, new ones are closed at once
// until refuse is turned off again.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close() // the point is to break them
	}
	clear(p.conns)
}

func (p *cutProxy) setRefuse(v bool) {
	p.mu.Lock()
	p.refuse = v
	p.mu.Unlock()
}

// holdNew makes new connections wait until release is called.
func (p *cutProxy) holdNew() (release func()) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.hold = ch
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.hold = nil
		p.mu.Unlock()
		close(ch)
	}
}
