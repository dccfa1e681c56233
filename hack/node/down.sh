#!/usr/bin/env bash
# Tears down the node hack/node/up.sh built, whatever state it got to: every process
# it (or the suite, via NODE_DIR/pids) started, every container and its shim, the
# mounts under NODE_DIR and the pods' network namespaces, the iptables chains of
# kube-proxy and the CNI plugins, the node's network devices, the cgroups of the
# pods, the sysctls it changed, and NODE_DIR itself. Safe to run twice, and when
# nothing is up. Exits non-zero if something could not be removed, naming it.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

[[ $(id -u) == 0 ]] || die "needs root"
problems=()

# stop NAME [SECONDS]: SIGTERM the recorded process, SIGKILL after the grace period.
stop() {
  local f=$NODE_DIR/pids/$1.pid grace=${2:-10} pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $((grace * 10))); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null && sleep 0.2
  fi
  rm -f "$f"
}

if [[ -d $NODE_DIR/pids ]]; then
  # Processes the suite started on the host (receivers, registries) first.
  for f in "$NODE_DIR"/pids/suite-*.pid; do
    [[ -f $f ]] && stop "$(basename "$f" .pid)" 5
  done
  # The kubelet first, so nothing restarts the containers removed next.
  stop kubelet 10
  if pid_alive "$NODE_DIR/pids/containerd.pid"; then
    # -f kills a running task before deleting it.
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1; done
  fi
  # Their state is deleted below, so a short grace period is enough.
  stop kube-proxy 2
  stop coredns 2
  stop kube-scheduler 2
  stop kube-controller-manager 2
  stop kube-apiserver 3
  stop etcd 2
  stop containerd 3
  for f in "$NODE_DIR"/pids/*.pid; do
    [[ -f $f ]] && stop "$(basename "$f" .pid)" 5
  done
fi

# Shims outlive containerd by design. Ours name our socket in their arguments; kill
# those by pid, and nothing else.
if [[ -d $NODE_DIR ]]; then
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    if [[ $cmd == *containerd-shim* && $cmd == *"-address $CONTAINERD_SOCK "* ]]; then
      kill -KILL "${p#/proc/}" 2>/dev/null
    fi
  done
  sleep 0.2
fi

# kube-proxy's rules (it knows its own chains), then what the CNI plugins left.
if [[ -x $NODE_BIN/kube-proxy && -f $NODE_DIR/etc/kube-proxy.yaml ]]; then
  "$NODE_BIN/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
fi
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for t in nat filter mangle; do
    # Rules jumping into our chains, then the chains themselves.
    "$ipt" -t "$t" -S 2>/dev/null | grep -E -- '^-A .* -j (KUBE-|CNI-)' | grep -vE '^-A (KUBE-|CNI-)' |
      while read -r rule; do
      eval "$ipt -t $t ${rule/#-A/-D}" 2>/dev/null
    done
    for c in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
      "$ipt" -t "$t" -F "$c" 2>/dev/null
    done
    for c in $("$ipt" -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-)/ {print $2}'); do
      "$ipt" -t "$t" -X "$c" 2>/dev/null || problems+=("$ipt -t $t chain $c")
    done
  done
done
command -v conntrack >/dev/null && conntrack -D -s "$POD_CIDR" >/dev/null 2>&1

# Mounts: everything under NODE_DIR (overlay rootfs, shm, secret and projected
# volumes), deepest first, and the pods' network namespaces.
umount_under() {
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
}
umount_under "$NODE_DIR"
if [[ -f $NODE_DIR/netns.before ]]; then
  for n in /run/netns/cni-*; do
    [[ -e $n ]] || continue
    grep -qxF "$n" "$NODE_DIR/netns.before" && continue
    umount "$n" 2>/dev/null || umount -l "$n" 2>/dev/null
    rm -f "$n"
  done
fi
if [[ -n $(awk -v d="$NODE_DIR" 'index($2, d) == 1' /proc/self/mounts) ]]; then
  problems+=("mounts under $NODE_DIR")
fi

# Network devices: the pods' bridge (veths went with their namespaces) and ours.
for dev in "$CNI_DEV" "$NODE_DEV"; do
  if ip link show "$dev" >/dev/null 2>&1; then
    ip link del "$dev" || problems+=("device $dev")
  fi
done
for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
  [[ $(ip -o link show "$v" 2>/dev/null) == *"master $CNI_DEV"* ]] && ip link del "$v"
done

# Pod cgroups (cgroupfs driver): the kubelet's kubepods tree, leaves first.
for ctl in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ -d $ctl/kubepods ]] || continue
  find "$ctl/kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null
  [[ -d $ctl/kubepods ]] && problems+=("cgroup $ctl/kubepods")
done

# Pod log files the kubelet wrote (the directory too if up.sh found none).
if [[ -d $NODE_DIR ]]; then
  rm -rf /var/log/pods/*_*_*/ /var/log/containers/*.log 2>/dev/null
  if [[ -f $NODE_DIR/created-var-log-pods ]]; then
    rmdir /var/log/pods /var/log/containers 2>/dev/null
  fi
fi

if [[ -f $NODE_DIR/sysctl.saved ]]; then
  while IFS= read -r kv; do sysctl -q -w "$kv" >/dev/null 2>&1 || problems+=("sysctl $kv"); done <"$NODE_DIR/sysctl.saved"
fi

left=()
node_bin=$(realpath -m "$NODE_BIN")
envtest_bin=$(realpath -m "$ENVTEST_BIN")
if [[ -d $NODE_DIR ]]; then
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")
    if [[ $exe == "$node_bin"/* || $exe == "$envtest_bin"/* && $cmd == *"$NODE_DIR"* || $cmd == *"$CONTAINERD_SOCK"* ]]; then
      left+=("${p#/proc/}")
    fi
  done
fi
((${#left[@]})) && problems+=("processes ${left[*]}")
if ((${#problems[@]} == 0)); then
  rm -rf "$NODE_DIR" || problems+=("$NODE_DIR")
fi
if ((${#problems[@]})); then
  log "left behind: ${problems[*]}"
  exit 1
fi
log "node down; nothing left"
