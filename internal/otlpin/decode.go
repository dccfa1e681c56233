package otlpin

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The part of an ExportLogsServiceRequest that becomes messages, decoded by hand
// (protowire) instead of through the generated OTLP types: those and the protobuf
// runtime behind them were 2.9 MB of the collector's binary. Fields not read here
// (schema URLs, entity refs, the profiles string-table indexes) are skipped. The
// decoding follows protobuf's rules where they matter for what is kept: the last
// value of a scalar wins, a message field given twice is merged, a known field with
// another wire type is an unknown field, strings must be UTF-8.
// TestDecodeMatchesGenerated and FuzzRead check it against the generated types.

// LogsData is a decoded request.
type LogsData struct {
	ResourceLogs []ResourceLogs
}

// ResourceLogs is one resource's records.
type ResourceLogs struct {
	// Resource is the resource's attributes.
	Resource  []KeyValue
	ScopeLogs []ScopeLogs
}

// ScopeLogs is one instrumentation scope's records.
type ScopeLogs struct {
	Scope      Scope
	LogRecords []LogRecord
}

// Scope is an InstrumentationScope.
type Scope struct {
	Name, Version string
	Attributes    []KeyValue
}

// LogRecord is a log record's fields.
type LogRecord struct {
	TimeUnixNano, ObservedTimeUnixNano uint64
	SeverityNumber                     int32
	SeverityText                       string
	Body                               AnyValue
	Attributes                         []KeyValue
	DroppedAttributesCount             uint32
	Flags                              uint32
	TraceID, SpanID                    []byte
	EventName                          string
}

// KeyValue is an attribute.
type KeyValue struct {
	Key   string
	Value AnyValue
}

// Kind tells which of AnyValue's fields holds its value.
type Kind uint8

// AnyValue kinds; KindOther is a value of a kind this package does not read (a
// string-table index), written as null.
const (
	KindNone Kind = iota
	KindString
	KindBool
	KindInt
	KindDouble
	KindBytes
	KindArray
	KindKVList
	KindOther
)

// AnyValue is a value: Str for KindString, Bool, Int, Double, Bytes, Array (the
// values of an ArrayValue) and KVList (of a KeyValueList) for their kinds.
type AnyValue struct {
	Kind   Kind
	Str    string
	Bool   bool
	Int    int64
	Double float64
	Bytes  []byte
	Array  []AnyValue
	KVList []KeyValue
}

// maxDepth bounds the nesting of messages (values in arrays in lists ...), as
// protobuf's own decoder does (protowire.DefaultRecursionLimit).
const maxDepth = 10000

var (
	errTruncated = errors.New("truncated or malformed field")
	errDepth     = errors.New("nested too deep")
	errUTF8      = errors.New("string field contains invalid UTF-8")
)

// decodeProto decodes a protobuf ExportLogsServiceRequest (or LogsData: the same
// fields) into data.
func decodeProto(b []byte, data *LogsData) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		if num == 1 && typ == protowire.BytesType {
			data.ResourceLogs = append(data.ResourceLogs, ResourceLogs{})
			return decodeResourceLogs(v, &data.ResourceLogs[len(data.ResourceLogs)-1])
		}
		return nil
	})
}

// eachField calls f for every field of the message b: v is the value of a
// length-delimited field, x that of a varint or fixed one. Groups and unknown wire
// types are skipped as protobuf skips unknown fields.
func eachField(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", errTruncated, protowire.ParseError(n))
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: %w", errTruncated, protowire.ParseError(n))
		}
		b = b[n:]
		if typ == protowire.StartGroupType {
			continue
		}
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func utf8String(v []byte) (string, error) {
	if !utf8.Valid(v) {
		return "", errUTF8
	}
	return string(v), nil
}

func decodeResourceLogs(b []byte, rl *ResourceLogs) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // resource
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num == 1 && typ == protowire.BytesType { // attributes
					return appendKeyValue(&rl.Resource, v, 1)
				}
				return nil
			})
		case 2: // scope_logs
			rl.ScopeLogs = append(rl.ScopeLogs, ScopeLogs{})
			return decodeScopeLogs(v, &rl.ScopeLogs[len(rl.ScopeLogs)-1])
		case 3: // schema_url: not kept, but a string
			_, err := utf8String(v)
			return err
		}
		return nil
	})
}

func decodeScopeLogs(b []byte, sl *ScopeLogs) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // scope
			return decodeScope(v, &sl.Scope)
		case 2: // log_records
			sl.LogRecords = append(sl.LogRecords, LogRecord{})
			return decodeLogRecord(v, &sl.LogRecords[len(sl.LogRecords)-1])
		case 3: // schema_url
			_, err := utf8String(v)
			return err
		}
		return nil
	})
}

func decodeScope(b []byte, s *Scope) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		var err error
		switch num {
		case 1:
			s.Name, err = utf8String(v)
		case 2:
			s.Version, err = utf8String(v)
		case 3:
			err = appendKeyValue(&s.Attributes, v, 1)
		}
		return err
	})
}

func decodeLogRecord(b []byte, r *LogRecord) error {
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			r.TimeUnixNano = x
		case num == 11 && typ == protowire.Fixed64Type:
			r.ObservedTimeUnixNano = x
		case num == 2 && typ == protowire.VarintType:
			r.SeverityNumber = int32(x) //nolint:gosec // an enum is an int32 on the wire, truncated as protobuf does
		case num == 3 && typ == protowire.BytesType:
			r.SeverityText, err = utf8String(v)
		case num == 5 && typ == protowire.BytesType:
			err = decodeAnyValue(v, &r.Body, 1)
		case num == 6 && typ == protowire.BytesType:
			err = appendKeyValue(&r.Attributes, v, 1)
		case num == 7 && typ == protowire.VarintType:
			r.DroppedAttributesCount = uint32(x) //nolint:gosec // a uint32 field, truncated as protobuf does
		case num == 8 && typ == protowire.Fixed32Type:
			r.Flags = uint32(x) //nolint:gosec // read as fixed32
		case num == 9 && typ == protowire.BytesType:
			r.TraceID = append(r.TraceID[:0:0], v...)
		case num == 10 && typ == protowire.BytesType:
			r.SpanID = append(r.SpanID[:0:0], v...)
		case num == 12 && typ == protowire.BytesType:
			r.EventName, err = utf8String(v)
		}
		return err
	})
}

func appendKeyValue(list *[]KeyValue, b []byte, depth int) error {
	*list = append(*list, KeyValue{})
	return decodeKeyValue(b, &(*list)[len(*list)-1], depth)
}

func decodeKeyValue(b []byte, kv *KeyValue, depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		var err error
		switch num {
		case 1:
			kv.Key, err = utf8String(v)
		case 2:
			err = decodeAnyValue(v, &kv.Value, depth+1)
		}
		return err
	})
}

// decodeAnyValue merges b into a: a member of the oneof replaces another; an array
// or list given again is appended to, as protobuf merges a message.
func decodeAnyValue(b []byte, a *AnyValue, depth int) error {
	if depth > maxDepth {
		return errDepth
	}
	set := func(k Kind) {
		if a.Kind != k {
			*a = AnyValue{Kind: k}
		}
	}
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			s, err := utf8String(v)
			if err != nil {
				return err
			}
			set(KindString)
			a.Str = s
		case num == 2 && typ == protowire.VarintType:
			set(KindBool)
			a.Bool = x != 0
		case num == 3 && typ == protowire.VarintType:
			set(KindInt)
			a.Int = int64(x) //nolint:gosec // int64 on the wire is the varint's bits
		case num == 4 && typ == protowire.Fixed64Type:
			set(KindDouble)
			a.Double = math.Float64frombits(x)
		case num == 5 && typ == protowire.BytesType:
			set(KindArray)
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 || typ != protowire.BytesType {
					return nil
				}
				a.Array = append(a.Array, AnyValue{})
				return decodeAnyValue(v, &a.Array[len(a.Array)-1], depth+1)
			})
		case num == 6 && typ == protowire.BytesType:
			set(KindKVList)
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 || typ != protowire.BytesType {
					return nil
				}
				return appendKeyValue(&a.KVList, v, depth+1)
			})
		case num == 7 && typ == protowire.BytesType:
			set(KindBytes)
			a.Bytes = append(a.Bytes[:0:0], v...)
		case num == 8 && typ == protowire.VarintType:
			set(KindOther)
		}
		return nil
	})
}
