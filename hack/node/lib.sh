# Shared settings of hack/node/up.sh and down.sh (sourced, not run).
#
# The node lives entirely under NODE_DIR (state, logs, PKI, containerd root and state,
# kubelet root) and on its own address NODE_IP, held by a bridge device of its own, so
# nothing it listens on can clash with processes on 127.0.0.1 and down.sh knows
# exactly what to remove.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-1.37.2}
NODE_DIR=${KUBEPLEX_NODE_DIR:-/tmp/kubeplex-node}
NODE_NAME=${KUBEPLEX_NODE_NAME:-kubeplex-node}
NODE_IP=${KUBEPLEX_NODE_IP:-10.250.0.1}
NODE_DEV=kpx-node0 # holds NODE_IP
CNI_DEV=kpx-cni0   # the pods' bridge (CNI bridge plugin)
POD_CIDR=10.244.0.0/16
POD_SUBNET=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/12
ENVTEST_BIN=${ENVTEST_BIN:-$root/bin/k8s/$KUBE_VERSION}
NODE_BIN=${NODE_BIN:-$root/bin/node/$KUBE_VERSION}
CNI_BIN=${CNI_BIN:-/usr/lib/cni}
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
PAUSE_IMAGE=docker.io/kubeplex-node/pause:1
# Sysctls the node changes (the first two itself, the rest the kubelet); down.sh puts
# the saved values back.
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

log() { printf '[node %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# pid_alive PIDFILE: the process recorded there still runs.
pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
