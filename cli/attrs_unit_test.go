package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
)

// TestAttrsText: a line's attributes keep the router's order and show compactly
// after the message, quoted where a value would otherwise read ambiguously; a line
// without any reads exactly as before.
func TestAttrsText(t *testing.T) {
	var l Line
	raw := `{"time":"2026-11-25T10:00:00.000000+00:00","source":"app","dyno":"web.1","message":"hi",` +
		`"attrs":{"z":"1","a":"two words","e":"","q":"x=y","b":"tab\there","u":"ünï"}}`
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		t.Fatal(err)
	}
	if got, want := l.Attrs.text(), `[z=1 a="two words" e="" q="x=y" b="tab\there" u=ünï]`; got != want {
		t.Errorf("text %s, want %s", got, want)
	}
	for _, bad := range []string{`{"attrs":[1]}`, `{"attrs":{"k":1}}`, `{"attrs":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &l); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	var out bytes.Buffer
	p := &printer{out: bufio.NewWriter(&out)}
	for _, line := range []string{raw, `{"time":"t","source":"app","dyno":"web.1","message":"plain"}`} {
		if err := p.line([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.flush()
	want := "2026-11-25T10:00:00.000000+00:00 app[web.1]: hi " + `[z=1 a="two words" e="" q="x=y" b="tab\there" u=ünï]` + "\nt app[web.1]: plain\n"
	if out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}
