// Package benchdoc writes one benchmark's section into docs/benchmarks.md, replacing
// the section of the same heading and leaving every other benchmark's results alone,
// so each harness can rerun on its own.
package benchdoc

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// WriteSection puts heading and body into the markdown file at path: in place of the
// section that has the same heading (up to the next "## " heading), or at the end.
func WriteSection(path, heading, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := string(old)
	if doc == "" {
		doc = "# Benchmarks\n"
	}
	section := heading + "\n\n" + body
	i := strings.Index(doc, heading+"\n")
	if i < 0 {
		doc = strings.TrimRight(doc, "\n") + "\n\n" + section
	} else {
		end := len(doc)
		if j := strings.Index(doc[i+len(heading):], "\n## "); j >= 0 {
			end = i + len(heading) + j + 1
			section += "\n"
		}
		doc = doc[:i] + section + doc[end:]
	}
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
