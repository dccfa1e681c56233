// Package testenv is the support kubeplex's test packages share: a real
// kube-apiserver and etcd with the CRDs installed (envtest), kubeconfigs for it,
// the real binaries built once and run (and stopped) with their output captured,
// free loopback addresses, a test CA for TLS peers, and polling for eventual states.
// Only test code imports it (_test.go files and test peers such as router/drainpeer);
// it links envtest and is no part of any binary.
package testenv
