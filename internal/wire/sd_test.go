package wire

import (
	"bytes"
	"testing"

	"github.com/influxdata/go-syslog/v3/rfc5424"
)

func TestSDParamsAndClip(t *testing.T) {
	var sd []byte
	sd = append(AppendSDParam(AppendSDParam([]byte("["+SDIDOtel), "trace_id", "abc"), "severity_text", "WARN"), ']')
	sd = append(sd, "[empty@32473]"...)
	sd = append(AppendSDParam([]byte(string(sd)+"["+SDIDLog), "msg", `he said "hi" \o/ [x]`+"\xff"), ']')
	if _, err := Scan(append([]byte("<1>1 - - - - - "), sd...)); err != nil {
		t.Fatalf("built SD %q does not scan: %v", sd, err)
	}
	var got []string
	for p := range SDParams(sd) {
		got = append(got, string(p.ID)+" "+string(p.Name)+"="+string(UnescapeSDValue(nil, p.Value)))
	}
	want := []string{SDIDOtel + " trace_id=abc", SDIDOtel + " severity_text=WARN", SDIDLog + ` msg=he said "hi" \o/ [x]` + "\uFFFD"}
	if len(got) != len(want) {
		t.Fatalf("params %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("param %d = %q, want %q", i, got[i], want[i])
		}
	}
	for limit := 0; limit <= len(sd)+1; limit++ {
		c := ClipSD(sd, limit)
		if len(c) > limit || !bytes.HasPrefix(sd, c) {
			t.Fatalf("ClipSD(%d) = %q", limit, c)
		}
		if len(c) > 0 {
			if _, err := Scan(append([]byte("<1>1 - - - - - "), c...)); err != nil {
				t.Fatalf("ClipSD(%d) = %q does not scan: %v", limit, c, err)
			}
		}
	}
}

// FuzzSD: on any STRUCTURED-DATA Scan accepts, clipping keeps it valid and the
// parameters SDParams finds are go-syslog's, when go-syslog accepts the record too.
func FuzzSD(f *testing.F) {
	for _, s := range []string{`[a b="c"]`, `[a@1 b="c\"d" e="\]"][f]`, `[x y="]"]`, `[a b="\\"]`} {
		f.Add([]byte(s), 5)
	}
	f.Fuzz(func(t *testing.T, sd []byte, limit int) {
		rec := append([]byte("<1>1 - - - - - "), sd...)
		fields, err := Scan(rec)
		if err != nil || len(fields.StructuredData) == 0 {
			return
		}
		sd = fields.StructuredData
		if c := ClipSD(sd, limit); len(c) > 0 {
			if _, err := Scan(append([]byte("<1>1 - - - - - "), c...)); err != nil || len(c) > limit {
				t.Fatalf("ClipSD(%q, %d) = %q: %v", sd, limit, c, err)
			}
		}
		n := 0
		seen := map[string]string{}
		for p := range SDParams(sd) {
			n++
			seen[string(p.ID)+"\x00"+string(p.Name)] = string(UnescapeSDValue(nil, p.Value))
		}
		sm, err := rfc5424.NewParser().Parse(rec)
		if err != nil || sm.(*rfc5424.SyslogMessage).StructuredData == nil {
			return
		}
		ref := 0
		for id, params := range *sm.(*rfc5424.SyslogMessage).StructuredData {
			for k, v := range params {
				ref++
				if got, ok := seen[id+"\x00"+k]; !ok || got != v {
					t.Fatalf("%q: go-syslog has %s %s=%q, SDParams %q", sd, id, k, v, got)
				}
			}
		}
		if ref > n {
			t.Fatalf("%q: go-syslog found %d params, SDParams %d", sd, ref, n)
		}
	})
}
