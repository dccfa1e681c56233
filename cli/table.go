package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table writes aligned columns, kubectl style. The first write error (a closed
// stdout) is kept and returned by flush, so callers check once.
type table struct {
	tw  *tabwriter.Writer
	err error
}

func newTable(w io.Writer, withNamespace bool, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	if t.err == nil {
		_, t.err = fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
	}
}

func (t *table) flush() error {
	if t.err != nil {
		return t.err
	}
	return t.tw.Flush()
}

// say prints a message for the user; a failed write to stdout is the command's
// error.
func say(w io.Writer, format string, args ...any) error {
	_, err := fmt.Fprintf(w, format, args...)
	return err
}

// notice prints to stderr, best effort: there is nowhere else to report a failure.
func notice(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}
