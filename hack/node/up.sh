#!/usr/bin/env bash
# Brings up a real single-node Kubernetes on this machine: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (Debian's, with its own root,
# state and socket under NODE_DIR), kubelet, kube-proxy (iptables) and CoreDNS as host
# processes. Pods get addresses from a CNI bridge; the node's address is NODE_IP on a
# device of its own. Images are never pulled from outside: every dist/*.tar (make
# images) and the local pause image are imported into containerd.
#
# Needs root, the envtest assets (make envtest), the node assets (hack/node/assets.sh)
# and the Debian packages containerd runc containernetworking-plugins iptables
# conntrack. Writes NODE_DIR/env (KUBECONFIG and friends) for the suite. Undo
# everything with hack/node/down.sh (make test-e2e does that even on failure).
#
# Facts this relies on were verified on this kind of machine: ../shared/K8S-LOCAL.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

start_ms=$(date +%s%3N)
elapsed() { local ms=$(($(date +%s%3N) - start_ms)); printf "%d.%01ds" $((ms / 1000)) $((ms % 1000 / 100)); }
[[ $(id -u) == 0 ]] || die "needs root (containerd, kubelet, iptables)"
for b in "$ENVTEST_BIN"/{etcd,kube-apiserver,kubectl} "$NODE_BIN"/{kubelet,kube-scheduler,kube-controller-manager,kube-proxy,coredns}; do
  [[ -x $b ]] || die "missing $b: run make envtest and hack/node/assets.sh (make node-assets)"
done
for b in containerd containerd-shim-runc-v2 ctr runc iptables conntrack openssl curl; do
  command -v "$b" >/dev/null || die "missing $b: apt-get install containerd runc containernetworking-plugins iptables conntrack openssl curl"
done
for p in bridge host-local portmap loopback; do
  [[ -x $CNI_BIN/$p ]] || die "missing CNI plugin $CNI_BIN/$p: apt-get install containernetworking-plugins"
done
[[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || die "the kernel has no br_netfilter: Service traffic between pods on the bridge cannot work"
if [[ -e $NODE_DIR ]]; then
  die "$NODE_DIR exists: a node is up or was not torn down; run hack/node/down.sh"
fi
kubectl=$ENVTEST_BIN/kubectl

mkdir -p "$NODE_DIR"/{pids,logs,pki,kubeconfig,etc,cni/net.d,cni/ipam,containerd,kubelet,etcd}
# From here on a failure leaves partial state: down.sh cleans it.
for s in "${SYSCTLS[@]}"; do
  echo "$s=$(sysctl -n "$s")"
done >"$NODE_DIR/sysctl.saved"
sysctl -q -w net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
[[ -d /var/log/pods ]] || touch "$NODE_DIR/created-var-log-pods"
# Pod network namespaces that are not the node's (down.sh leaves these alone).
ls -d /run/netns/cni-* >"$NODE_DIR/netns.before" 2>/dev/null || true

# The node's address, on a bridge with no ports (this kernel has no dummy devices): a
# local address pods reach through their gateway, and nothing outside this machine.
ip link add "$NODE_DEV" type bridge
ip addr add "$NODE_IP/32" dev "$NODE_DEV"
ip link set "$NODE_DEV" up

# start NAME CMD...: runs CMD in its own session (a Ctrl-C to the caller's process
# group reaches only the suite, and down.sh stops the node in order) with its output in
# logs/NAME.log and its pid in pids/NAME.pid.
start() {
  local name=$1
  shift
  setsid "$@" >"$NODE_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$NODE_DIR/pids/$name.pid"
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
  local what=$1 deadline=$(($(date +%s) + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) > deadline)); then
      log "timed out waiting for $what; last lines of the logs:"
      tail -n 5 "$NODE_DIR"/logs/*.log >&2 || true
      exit 1
    fi
    for f in "$NODE_DIR"/pids/*.pid; do
      pid_alive "$f" || die "$(basename "$f" .pid) exited while waiting for $what: see $NODE_DIR/logs/$(basename "$f" .pid).log"
    done
    sleep 0.2
  done
}

# --- PKI: one CA for everything; client certificates name the identities RBAC knows.
pki=$NODE_DIR/pki
cert() { # cert NAME CN O SANS
  local name=$1 cn=$2 o=$3 sans=$4 ext
  ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
  [[ -n $sans ]] && ext+=$'\n'"subjectAltName=$sans"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/$name.key" \
    -subj "/CN=$cn${o:+/O=$o}" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 7 -extfile <(echo "$ext") -out "$pki/$name.crt" 2>/dev/null
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=kubeplex-node-ca" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
cert apiserver kube-apiserver "" "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1,IP:10.96.0.1"
cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters ""
cert admin kubernetes-admin system:masters ""
cert controller-manager system:kube-controller-manager "" ""
cert scheduler system:kube-scheduler "" ""
cert kube-proxy system:kube-proxy "" ""
cert kubelet "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,IP:$NODE_IP"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

kubeconfig() { # kubeconfig NAME CERT
  cat >"$NODE_DIR/kubeconfig/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubeplex-node
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$pki/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$pki/$2.crt", client-key: "$pki/$2.key"}
contexts:
- name: kubeplex-node
  context: {cluster: kubeplex-node, user: $2}
current-context: kubeplex-node
EOF
}
for n in admin controller-manager scheduler kube-proxy kubelet; do kubeconfig "$n" "$n"; done
admin=$NODE_DIR/kubeconfig/admin.kubeconfig

# --- control plane
start etcd "$ENVTEST_BIN/etcd" --data-dir "$NODE_DIR/etcd" --name "$NODE_NAME" \
  --listen-client-urls "http://$NODE_IP:2379" --advertise-client-urls "http://$NODE_IP:2379" \
  --listen-peer-urls "http://$NODE_IP:2380" --initial-advertise-peer-urls "http://$NODE_IP:2380" \
  --initial-cluster "$NODE_NAME=http://$NODE_IP:2380" --unsafe-no-fsync
start kube-apiserver "$ENVTEST_BIN/kube-apiserver" \
  --etcd-servers "http://$NODE_IP:2379" \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP,Hostname \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false
wait_for "kube-apiserver /readyz" 120 curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://$NODE_IP:6443/readyz"
log "control plane ready after $(elapsed)"

start kube-controller-manager "$NODE_BIN/kube-controller-manager" \
  --kubeconfig "$NODE_DIR/kubeconfig/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$NODE_DIR/kubeconfig/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$NODE_DIR/kubeconfig/controller-manager.kubeconfig" \
  --bind-address "$NODE_IP" --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$POD_CIDR" --allocate-node-cidrs=false \
  --controllers '*'
start kube-scheduler "$NODE_BIN/kube-scheduler" \
  --kubeconfig "$NODE_DIR/kubeconfig/scheduler.kubeconfig" \
  --authentication-kubeconfig "$NODE_DIR/kubeconfig/scheduler.kubeconfig" \
  --authorization-kubeconfig "$NODE_DIR/kubeconfig/scheduler.kubeconfig" \
  --bind-address "$NODE_IP" --leader-elect=false

# --- containerd with its own everything; restrict_oom_score_adj because this VM lacks
# CAP_SYS_RESOURCE (runc fails with "can't get final child's PID from pipe" otherwise).
cat >"$NODE_DIR/etc/containerd.toml" <<EOF
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$NODE_DIR/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$NODE_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODE_DIR/containerd/certs.d"
EOF
cat >"$NODE_DIR/cni/net.d/10-kubeplex.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kubeplex",
  "plugins": [
    {
      "type": "bridge", "bridge": "$CNI_DEV", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
start containerd containerd --config "$NODE_DIR/etc/containerd.toml"
wait_for containerd 60 ctr_ version

# --- images: the pause image and every tarball make images wrote.
images=("$root"/dist/*.tar "$root"/dist/node/*.tar)
for f in "${images[@]}"; do
  [[ -f $f ]] || die "no image tarballs in $root/dist: run make images"
done
for f in "${images[@]}"; do
  ctr_ images import "$f" >/dev/null
done
# (Listed into a variable first: grep -q stopping early would SIGPIPE ctr under pipefail.)
imported=$(ctr_ images ls -q)
grep -qx "$PAUSE_IMAGE" <<<"$imported" || die "pause image $PAUSE_IMAGE not imported (make images builds it)"
log "imported ${#images[@]} images"

# --- kubelet: cgroup v1 needs failCgroupV1 false; cgroupfs since there is no systemd.
echo "" >"$NODE_DIR/etc/resolv.conf"
cat >"$NODE_DIR/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: $NODE_IP
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $NODE_DIR/etc/resolv.conf
failSwapOn: false
registerNode: true
# Disk and memory on a shared CI machine are what they are: never evict the suite.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
# Small rotation size so the CRI tail suite sees a real rotation in seconds.
containerLogMaxSize: 1Mi
containerLogMaxFiles: 3
containerLogMonitorInterval: 3s
syncFrequency: 10s
nodeStatusReportFrequency: 10s
EOF
start kubelet "$NODE_BIN/kubelet" --config "$NODE_DIR/etc/kubelet.yaml" \
  --kubeconfig "$NODE_DIR/kubeconfig/kubelet.kubeconfig" --root-dir "$NODE_DIR/kubelet" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"

cat >"$NODE_DIR/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $NODE_DIR/kubeconfig/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: $NODE_IP:10256
metricsBindAddress: $NODE_IP:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0}
EOF
start kube-proxy "$NODE_BIN/kube-proxy" --config "$NODE_DIR/etc/kube-proxy.yaml"

# CoreDNS as a host process on the node's address: clusterDNS points straight at it.
cat >"$NODE_DIR/etc/Corefile" <<EOF
.:53 {
  bind $NODE_IP
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $admin
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
  }
  cache 5
}
EOF
start coredns "$NODE_BIN/coredns" -conf "$NODE_DIR/etc/Corefile"

wait_for "node $NODE_NAME Ready" 180 "$kubectl" --kubeconfig "$admin" wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
wait_for "default ServiceAccount" 60 "$kubectl" --kubeconfig "$admin" get serviceaccount default -n default
wait_for "kube-root-ca.crt" 60 "$kubectl" --kubeconfig "$admin" get configmap kube-root-ca.crt -n default

cat >"$NODE_DIR/env" <<EOF
export KUBECONFIG=$admin
export KUBEPLEX_NODE_DIR=$NODE_DIR
export KUBEPLEX_NODE_IP=$NODE_IP
export KUBEPLEX_NODE_NAME=$NODE_NAME
export KUBEPLEX_POD_CIDR=$POD_CIDR
export KUBEPLEX_SERVICE_CIDR=$SERVICE_CIDR
export KUBECTL=$kubectl
EOF
log "node $NODE_NAME Ready after $(elapsed) (source $NODE_DIR/env)"
