package wire

import (
	"iter"
	"unicode/utf8"
)

// SD-IDs of the structured data kubeplex writes for a message's attributes (an
// OpenTelemetry log record's fields, its attributes and its resource's attributes).
// kubeplex has no IANA private enterprise number; 32473 is the one RFC 5612 sets
// aside for documentation and examples, and RFC 5424's own examples use.
const (
	// SDIDOtel holds the record's own fields: trace_id, span_id (lowercase hex),
	// flags (hex, two digits), severity_text, event_name, scope.name, scope.version and
	// dropped_attributes_count (attributes that could not be kept, see SDName).
	SDIDOtel = "otel@32473"
	// SDIDLog holds the log record's attributes.
	SDIDLog = "log@32473"
	// SDIDResource holds the resource's attributes (service.name, ...).
	SDIDResource = "res@32473"
	// SDIDScope holds the instrumentation scope's attributes (its name and version
	// are in SDIDOtel).
	SDIDScope = "scope@32473"
)

// maxSDName is the longest SD-NAME (SD-ID or PARAM-NAME), RFC 5424 section 6.
const maxSDName = 32

// SDName reports whether s can be an SD-ID or PARAM-NAME: 1 to 32 printable US-ASCII
// characters other than '=', ' ', ']' and '"' (RFC 5424 section 6.3). Names that fail
// cannot be written without changing them; kubeplex drops them and counts them rather
// than rename them into a name that may mean something else.
func SDName(s string) bool {
	if len(s) == 0 || len(s) > maxSDName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return false
		}
	}
	return true
}

// AppendSDParam appends ` name="value"` to an open SD-ELEMENT, escaping '"', '\' and
// ']' in value (RFC 5424 section 6.3.3) and replacing invalid UTF-8 with U+FFFD.
// name must pass SDName.
func AppendSDParam(dst []byte, name, value string) []byte {
	dst = append(dst, ' ')
	dst = append(dst, name...)
	dst = append(dst, '=', '"')
	for i := 0; i < len(value); {
		c := value[i]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\\' || c == ']' {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(value[i:])
		if r == utf8.RuneError && n == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, value[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// SDParam is one SD-PARAM of a STRUCTURED-DATA list, as views into it. Value is as
// written, escapes included; UnescapeSDValue removes them.
type SDParam struct {
	ID, Name, Value []byte
}

// SDParams walks a valid STRUCTURED-DATA list (as Scan returns it, or as built with
// AppendSDParam) and yields each parameter in order. Elements without parameters
// yield nothing. It stops at the first byte that does not fit the grammar.
func SDParams(sd []byte) iter.Seq[SDParam] {
	return func(yield func(SDParam) bool) {
		i := 0
		for i < len(sd) && sd[i] == '[' {
			i++
			end := sdName(sd, i)
			if end < 0 {
				return
			}
			id := sd[i:end]
			i = end
			for i < len(sd) && sd[i] == ' ' {
				i++
				end = sdName(sd, i)
				if end < 0 || end+1 >= len(sd) || sd[end] != '=' || sd[end+1] != '"' {
					return
				}
				name := sd[i:end]
				i = end + 2
				v := i
				for i < len(sd) && sd[i] != '"' {
					if sd[i] == '\\' && i+1 < len(sd) {
						i++
					}
					i++
				}
				if i >= len(sd) {
					return
				}
				if !yield(SDParam{ID: id, Name: name, Value: sd[v:i]}) {
					return
				}
				i++
			}
			if i >= len(sd) || sd[i] != ']' {
				return
			}
			i++
		}
	}
}

// UnescapeSDValue appends v without its escapes: a backslash before '"', '\' or ']'
// is dropped; any other backslash is kept, as RFC 5424 section 6.3.3 says.
func UnescapeSDValue(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\' || v[i+1] == ']') {
			i++
		}
		dst = append(dst, v[i])
	}
	return dst
}

// ClipSD returns the longest prefix of a valid STRUCTURED-DATA list that is at most
// limit bytes and ends at an element boundary, so that a clipped list stays valid.
func ClipSD(sd []byte, limit int) []byte {
	if len(sd) <= limit {
		return sd
	}
	end, i := 0, 0
	for i < len(sd) && sd[i] == '[' {
		i++
		for i < len(sd) && sd[i] != ']' {
			if sd[i] == '"' {
				// A PARAM-VALUE: ']' inside it is escaped or plain, skip to its close.
				for i++; i < len(sd) && sd[i] != '"'; i++ {
					if sd[i] == '\\' {
						i++
					}
				}
			}
			i++
		}
		i++
		if i > limit {
			break
		}
		end = i
	}
	return sd[:end]
}
