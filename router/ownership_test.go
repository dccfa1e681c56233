package router

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/session"
)

func TestSelfURL(t *testing.T) {
	t.Setenv("POD_IP", "10.1.2.3")
	tests := []struct {
		o       Options
		want    string
		wantErr string
	}{
		{o: Options{SelfURL: "http://a:8080/"}, want: "http://a:8080"},
		{o: Options{Session: session.Options{PeerService: "ns/router"}}, want: "http://10.1.2.3:8080"},
		{o: Options{Session: session.Options{Peers: []string{"http://b:8080"}}}, wantErr: "needs --self-url"},
	}
	for _, tt := range tests {
		got, err := selfURL(tt.o, ":8080")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("selfURL(%+v) error %v, want %q", tt.o, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("selfURL(%+v) = %q, %v; want %q", tt.o, got, err, tt.want)
		}
	}
}

type peerList struct{ list []string }

func (p *peerList) Peers() []string { return p.list }

// TestOwnershipFollowsMembers: the owned set is recomputed when a peer joins, and the
// drains that moved (and only those staying in the table) are counted.
func TestOwnershipFollowsMembers(t *testing.T) {
	d := dispatch.New(dispatch.Options{Logger: slog.New(slog.DiscardHandler), Router: "t"})
	app := routing.App{ID: "a/b"}
	for i := range 40 {
		app.Drains = append(app.Drains, routing.Drain{ID: "a/d" + strings.Repeat("x", i), Token: "d.x", URL: "syslog://127.0.0.1:9"})
	}
	tbl := routing.Table{Apps: []routing.App{app}}
	tbl.Seal()
	if err := d.Apply(&tbl); err != nil {
		t.Fatal(err)
	}
	peers := &peerList{list: []string{"http://b"}}
	o := newOwnership(1, "http://a", peers, d, prometheus.NewRegistry())
	o.refresh()
	if o.owned == 0 || o.owned == 40 || len(o.drains) != 40 {
		t.Fatalf("owns %d of %d drains over two members", o.owned, len(o.drains))
	}
	before := o.owned
	peers.list = []string{"http://b/", "http://c"} // a trailing slash names the same member
	o.refresh()
	if len(o.set.Members()) != 3 {
		t.Fatalf("members %v", o.set.Members())
	}
	var m dto.Metric
	if err := o.moves.Write(&m); err != nil {
		t.Fatal(err)
	}
	moves := m.GetCounter().GetValue()
	if o.owned > before || moves != float64(before-o.owned) {
		t.Errorf("a third member joined: owned %d → %d, %v moves counted; want only losses, all counted", before, o.owned, moves)
	}
}
