package main

import "testing"

// The sink must count frames and read send times the same however the stream is cut
// into reads.
func TestFrameScannerSplits(t *testing.T) {
	var stream []byte
	want := []int64{1, 1234567890123456789, 42, 7}
	for i, sent := range want[:3] {
		stream = appendFrame(stream, appToken(0), i, sent)
	}
	stream = append(stream, '\n') // stray LF between frames is skipped
	stream = appendFrame(stream, appToken(0), 3, want[3])
	tests := []struct {
		name  string
		piece int
	}{
		{"whole", len(stream)},
		{"bytes", 1},
		{"odd", 7},
		{"across tails", 190},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f frameScanner
			frames := 0
			for i := 0; i < len(stream); i += tt.piece {
				frames += f.scan(stream[i:min(i+tt.piece, len(stream))], true)
			}
			if frames != len(want) {
				t.Fatalf("frames = %d, want %d", frames, len(want))
			}
			if len(f.stamps) != len(want) {
				t.Fatalf("stamps = %v, want %v", f.stamps, want)
			}
			for i := range want {
				if f.stamps[i] != want[i] {
					t.Fatalf("stamps = %v, want %v", f.stamps, want)
				}
			}
		})
	}
}
