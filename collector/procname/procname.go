// Package procname derives a worker's Logplex-style process name (web.1, worker.3)
// from what the pod tells the collector through its environment.
package procname

import (
	"path/filepath"
	"strings"
)

// Env is the subset of the environment the name comes from.
type Env struct {
	Process     string // KUBEPLEX_PROCESS: used as is when set
	ProcessType string // KUBEPLEX_PROCESS_TYPE
	Container   string // KUBEPLEX_CONTAINER_NAME
	PodIndex    string // KUBEPLEX_POD_INDEX (StatefulSet or indexed Job ordinal)
	PodName     string // KUBEPLEX_POD_NAME
}

// FromEnviron reads Env with getenv (os.Getenv in production).
func FromEnviron(getenv func(string) string) Env {
	return Env{
		Process:     getenv("KUBEPLEX_PROCESS"),
		ProcessType: getenv("KUBEPLEX_PROCESS_TYPE"),
		Container:   getenv("KUBEPLEX_CONTAINER_NAME"),
		PodIndex:    getenv("KUBEPLEX_POD_INDEX"),
		PodName:     getenv("KUBEPLEX_POD_NAME"),
	}
}

// Name returns the process name: KUBEPLEX_PROCESS when set, else "<type>.<n>".
// The type is KUBEPLEX_PROCESS_TYPE, else the container name, else fallback (the
// command's base name for collector run). n is the pod's ordinal when it has one
// (KUBEPLEX_POD_INDEX), else the last dash-separated part of the pod name — the
// ordinal of a StatefulSet pod (web-0 → 0) or the random suffix of a Deployment pod
// (web-7d9f8c6b5-x2k4q → x2k4q) — else 1, as for a lone process outside Kubernetes.
func (e Env) Name(fallback string) string {
	if p := clean(e.Process); p != "" {
		return p
	}
	typ := clean(e.ProcessType)
	if typ == "" {
		typ = clean(e.Container)
	}
	if typ == "" {
		typ = clean(filepath.Base(fallback))
	}
	if typ == "" || typ == "." {
		typ = "app"
	}
	return typ + "." + e.Ordinal()
}

// Ordinal returns the n of "<type>.<n>".
func (e Env) Ordinal() string {
	if n := clean(e.PodIndex); n != "" {
		return n
	}
	if e.PodName != "" {
		if i := strings.LastIndexByte(e.PodName, '-'); i >= 0 && i < len(e.PodName)-1 {
			return clean(e.PodName[i+1:])
		}
		return clean(e.PodName)
	}
	return "1"
}

// clean keeps a name within RFC 5424's PROCID alphabet (printable US-ASCII, no
// spaces), so the router never has to rewrite it.
func clean(s string) string {
	s = strings.TrimSpace(s)
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}
