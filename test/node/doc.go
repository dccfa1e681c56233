// Package node is kubeplex's suite on a real single-node Kubernetes (kubelet,
// containerd, kube-proxy, CoreDNS) that hack/node/up.sh builds on this machine:
// kubeplex is installed with `helm install` and `kubectl apply -k` as users do, and
// every case asserts on what arrived at real receivers or what the API says.
//
// Its tests carry the build tag "node", so `make test` never runs them; `make
// test-e2e` brings the node up, runs them and tears everything down. Run by hand:
//
//	hack/node/up.sh && source /tmp/kubeplex-node/env
//	go test -tags node -v ./test/node/
//	hack/node/down.sh
package node
