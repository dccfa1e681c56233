package benchdoc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteSection(t *testing.T) {
	tests := []struct {
		name, old, want string
	}{
		{"new file", "", "# Benchmarks\n\n## B\n\nnew\n"},
		{"appended", "# Benchmarks\n\n## A\n\na\n", "# Benchmarks\n\n## A\n\na\n\n## B\n\nnew\n"},
		{"replaced in the middle", "# Benchmarks\n\n## B\n\nold\n\n## C\n\nc\n", "# Benchmarks\n\n## B\n\nnew\n\n## C\n\nc\n"},
		{"replaced at the end", "# Benchmarks\n\n## A\n\na\n\n## B\n\nold\nmore\n", "# Benchmarks\n\n## A\n\na\n\n## B\n\nnew\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "benchmarks.md")
			if tc.old != "" {
				if err := os.WriteFile(path, []byte(tc.old), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteSection(path, "## B", "new\n"); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
