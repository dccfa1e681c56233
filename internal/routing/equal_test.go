package routing

import (
	"reflect"
	"testing"
	"time"
)

// TestEqualSeesEveryField: changing any one field of an app, a token or a drain
// makes Equal false, so a field added to the table is not skipped by a router that
// compares apps to find what a change touched; and a Clone is Equal and shares
// nothing that can be written.
func TestEqualSeesEveryField(t *testing.T) {
	now := time.Now()
	start := now
	base := func() App {
		return App{ID: "a/b", History: 5, Hosts: []string{"h"},
			Tokens: []Token{{SHA256: "ab", Token: "t", Source: "app", AllowedSources: []string{"x"}, Collector: true, NotAfter: &now}},
			Drains: []Drain{{ID: "a/d", Token: "d", URL: "https://h", Username: "u", Password: "p", HMACKey: "k",
				TLS: &TLS{CAPEM: "c", ServerName: "s"}, Headers: map[string]string{"a": "b"}, Compression: "gzip"}}}
	}
	// set changes field f of v (a struct) to something else.
	set := func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int:
			v.SetInt(v.Int() + 1)
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Slice:
			v.Set(reflect.Zero(v.Type()))
		case reflect.Map:
			v.Set(reflect.ValueOf(map[string]string{"a": "c"}))
		case reflect.Pointer:
			v.Set(reflect.Zero(v.Type()))
		default:
			t.Fatalf("no change for a %s field", v.Kind())
		}
	}
	a := base()
	for i := range reflect.TypeFor[App]().NumField() {
		b := base()
		set(reflect.ValueOf(&b).Elem().Field(i))
		if a.Equal(&b) {
			t.Errorf("App.%s changed, Equal true", reflect.TypeFor[App]().Field(i).Name)
		}
	}
	for i := range reflect.TypeFor[Token]().NumField() {
		b := base()
		set(reflect.ValueOf(&b.Tokens[0]).Elem().Field(i))
		if a.Equal(&b) {
			t.Errorf("Token.%s changed, Equal true", reflect.TypeFor[Token]().Field(i).Name)
		}
	}
	for i := range reflect.TypeFor[Drain]().NumField() {
		b := base()
		set(reflect.ValueOf(&b.Drains[0]).Elem().Field(i))
		if a.Equal(&b) {
			t.Errorf("Drain.%s changed, Equal true", reflect.TypeFor[Drain]().Field(i).Name)
		}
	}
	later := now.Add(time.Second)
	b := base()
	b.Tokens[0].NotAfter = &later
	b.Drains[0].TLS = &TLS{CAPEM: "c", ServerName: "s", InsecureSkipVerify: true}
	if a.Equal(&b) {
		t.Error("NotAfter and TLS values changed, Equal true")
	}

	c := a.Clone()
	if !a.Equal(&c) {
		t.Fatal("a clone is not Equal")
	}
	c.Tokens[0].AllowedSources[0], c.Hosts[0], c.Drains[0].Headers["a"] = "y", "g", "z"
	*c.Tokens[0].NotAfter, c.Drains[0].TLS.CAPEM = later, "d"
	if a.Tokens[0].AllowedSources[0] != "x" || a.Hosts[0] != "h" || a.Drains[0].Headers["a"] != "b" ||
		!a.Tokens[0].NotAfter.Equal(start) || a.Drains[0].TLS.CAPEM != "c" {
		t.Errorf("writing to a clone changed the original: %+v", a)
	}
}
