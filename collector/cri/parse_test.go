package cri

import (
	"bytes"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	tests := []struct {
		name    string
		in      string
		want    Line
		wantErr bool
	}{
		{name: "full stdout", in: "2016-10-06T00:17:09.669794202Z stdout F log content 1",
			want: Line{Time: ts, Content: []byte("log content 1")}},
		{name: "partial stderr", in: "2016-10-06T00:17:09.669794202Z stderr P part",
			want: Line{Time: ts, Stderr: true, Partial: true, Content: []byte("part")}},
		{name: "empty content with space", in: "2016-10-06T00:17:09.669794202Z stdout F ",
			want: Line{Time: ts, Content: []byte{}}},
		{name: "empty content without space", in: "2016-10-06T00:17:09.669794202Z stdout F",
			want: Line{Time: ts, Content: []byte{}}},
		{name: "content keeps spaces", in: "2016-10-06T00:17:09.669794202Z stdout F  a  b ",
			want: Line{Time: ts, Content: []byte(" a  b ")}},
		{name: "more tags", in: "2016-10-06T00:17:09.669794202Z stdout P:x text",
			want: Line{Time: ts, Partial: true, Content: []byte("text")}},
		{name: "zone offset", in: "2016-10-06T02:17:09.669794202+02:00 stdout F x",
			want: Line{Time: ts, Content: []byte("x")}},
		{name: "bad time", in: "yesterday stdout F x", wantErr: true},
		{name: "bad stream", in: "2016-10-06T00:17:09.669794202Z stdin F x", wantErr: true},
		{name: "bad tag", in: "2016-10-06T00:17:09.669794202Z stdout X x", wantErr: true},
		{name: "no stream", in: "2016-10-06T00:17:09.669794202Z", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLine([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !got.Time.Equal(tt.want.Time) || got.Stderr != tt.want.Stderr || got.Partial != tt.want.Partial ||
				!bytes.Equal(got.Content, tt.want.Content) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzParseLine: any input parses or is refused without panicking, and an accepted
// line's content is the tail of the input after the tag.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte("2016-10-06T00:17:09.669794202Z stdout F log content 1"))
	f.Add([]byte("2016-10-06T00:17:09.669794202Z stderr P "))
	f.Add([]byte("2016-10-06T00:17:09Z stdout F:x"))
	f.Add([]byte(" stdout F x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseLine(b)
		if err != nil {
			return
		}
		if !bytes.HasSuffix(b, l.Content) {
			t.Fatalf("content %q is not the tail of %q", l.Content, b)
		}
		if l.Time.IsZero() {
			t.Fatalf("accepted %q without a time", b)
		}
	})
}
