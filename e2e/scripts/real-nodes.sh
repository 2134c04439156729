# shellcheck shell=bash
# Real nodes for e2e/cluster (sourced by it; uses its STATE, PKI, LOGS, start, sign, log,
# die, fail_component and kubectl_admin).
#
# Each real node is a network namespace on a bridge the stack creates, running containerd
# (Debian's package, with runc and the CNI plugins), a kubelet and a kube-proxy (both from
# the localk8s multi-call binary) and kube-router's firewall (NetworkPolicy). Images come
# from the stack's registry. Addresses (all on networks the stack makes itself):
#
#   10.246.0.0/24   the node network: bridge landlord0 (10.246.0.1, the host side, where
#                   the API server and the host's services are reached), node N 10.246.0.1N
#   10.245.N.0/24   node N's pods (bridge CNI, host-local addresses)
#   10.96.0.0/16    Services (kube-proxy's iptables rules in every node namespace; the host
#                   reaches them through node 1)
#
# Nodes have no default route: pods reach each other, the host, Services and nothing off
# this machine. Real nodes carry the taint landlord.dev/real-node=true:NoSchedule and the
# label landlord.dev/node=real, so nothing lands on them unless it asks to (kwok nodes stay
# where everything else runs). Cluster DNS is CoreDNS, a Deployment on the real nodes.
#
# One stack with real nodes per machine (the bridge and the routes are the machine's);
# a second stack starts without them (LANDLORD_DEV_REAL_NODES=0).

REAL_BRIDGE=landlord0
REAL_NODE_NETWORK=10.246.0.0/24
REAL_HOST_IP=10.246.0.1
REAL_CLUSTER_CIDR=10.245.0.0/16
SERVICE_CIDR=10.96.0.0/16
CLUSTER_DNS_IP=10.96.0.10
REAL_TAINT=landlord.dev/real-node
REAL_OWNER_FILE=/run/landlord-real-nodes.owner
COREDNS_VERSION=v1.14.7
# NetworkPolicy enforcement: kube-router's firewall (iptables and ipset, per node), alone: the
# bridge CNI plugin routes pods and kube-proxy serves Services.
KUBE_ROUTER_VERSION=v2.1.0
# The Gateway API implementation: Traefik (one Go binary that is its own proxy). v3.6 is the
# newest the module proxy serves whose dependencies it serves too (v3.7 needs modules it
# refuses). Neither serves ListenerSet (v3.8 does; the proxy does not serve it), so the
# operator under test runs with --https-listener Gateway.
TRAEFIK_VERSION=v3.6.12
IMAGES_PG_MAJOR=15
# The real nodes' local volumes: how many per node, and the capacity each declares.
REAL_VOLUMES_PER_NODE=8
REAL_VOLUME_SIZE=10Gi
# A catalog Service for tests and the demo (images/echo).
ECHO_IMAGE=landlord.local/echo:1

real_node_name() { printf 'landlord-real-%s' "$1"; }
real_netns() { printf 'landlord-n%s' "$1"; }
real_node_ip() { printf '10.246.0.1%s' "$1"; }
real_pod_cidr() { printf '10.245.%s.0/24' "$1"; }
real_dir() { printf '%s/nodes/n%s' "$STATE" "$1"; }
real_sock() { printf '%s/run/containerd.sock' "$(real_dir "$1")"; }
real_cgroup() { printf 'landlord-n%s' "$1"; }
# The stack's registry, on the host's side of the bridge; every node mirrors the registries
# images name (docker.io, ghcr.io, ...) to it.
REGISTRY=$REAL_HOST_IP:5000
MIRRORED_REGISTRIES=(docker.io ghcr.io quay.io registry.k8s.io landlord.local)

# Names of the processes of N real nodes (and their registry), in start order.
real_components() {
  local i
  (($1 > 0)) && printf 'registry '
  for ((i = 1; i <= $1; i++)); do
    printf 'containerd-n%s kubelet-n%s kube-proxy-n%s kube-router-n%s ' "$i" "$i" "$i" "$i"
  done
}

# ---------------------------------------------------------------------------
# Binaries and images (cached like the control plane's, keyed by their sources)
# ---------------------------------------------------------------------------

coredns_path() {
  local key
  key=$(cat "$E2E_DIR/coredns/go.mod" "$E2E_DIR/coredns/go.sum" "$E2E_DIR/coredns/main.go" | sha256sum | cut -c1-12)
  printf '%s/bin/coredns-%s-%s' "$CACHE_DIR" "$COREDNS_VERSION" "$key"
}

kube_router_path() { printf '%s/bin/kube-router-%s' "$CACHE_DIR" "$KUBE_ROUTER_VERSION"; }
traefik_path() { printf '%s/bin/traefik-%s' "$CACHE_DIR" "$TRAEFIK_VERSION"; }

# cert-manager's controllers (e2e/certmanager): tests that need certificates start it.
cert_manager_path() {
  local key
  key=$(cat "$E2E_DIR/certmanager/go.mod" "$E2E_DIR/certmanager/go.sum" "$E2E_DIR/certmanager/main.go" | sha256sum | cut -c1-12)
  printf '%s/bin/cert-manager-controller-%s' "$CACHE_DIR" "$key"
}

images_dir() {
  local key
  key=$( (cat "$E2E_DIR/scripts/build-images.sh" "$E2E_DIR/scripts/image-rootfs.sh" "$E2E_DIR"/images/go.* "$E2E_DIR"/images/*/* \
    "/usr/lib/postgresql/$IMAGES_PG_MAJOR/bin/postgres" 2>/dev/null; echo "$TRAEFIK_VERSION $(coredns_path)") | sha256sum | cut -c1-12)
  printf '%s/images/%s' "$CACHE_DIR" "$key"
}

# build_e2e_module DIR WHAT OUT: builds the main package of e2e/DIR (a module of its own)
# into OUT unless it is there.
build_e2e_module() {
  local dir=$1 what=$2 out=$3 start=$SECONDS
  [[ -x $out ]] && return 0
  log "building $what -> $out"
  (cd "$E2E_DIR/$dir" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out.tmp.$$" .) ||
    { rm -f "$out.tmp.$$"; die "building $what failed"; }
  mv -f "$out.tmp.$$" "$out"
  log "built $what in $((SECONDS - start))s"
}

build_real_node_artifacts() {
  local coredns images start
  coredns=$(coredns_path)
  images=$(images_dir)
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  build_e2e_module coredns "CoreDNS $COREDNS_VERSION" "$coredns"
  local kube_router
  kube_router=$(kube_router_path)
  if [[ ! -x $kube_router ]]; then
    local tmp
    start=$SECONDS
    tmp=$(mktemp -d)
    log "building kube-router $KUBE_ROUTER_VERSION -> $kube_router"
    (cd "$tmp" && GOFLAGS="" GOBIN="$tmp" go install -trimpath -ldflags="-s -w" \
      "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION") ||
      { rm -rf "$tmp"; die "building kube-router failed"; }
    mv -f "$tmp/kube-router" "$kube_router"
    rm -rf "$tmp"
    log "built kube-router in $((SECONDS - start))s"
  fi
  local traefik
  traefik=$(traefik_path)
  if [[ ! -x $traefik ]]; then
    local tmp src
    start=$SECONDS
    tmp=$(mktemp -d)
    log "building Traefik $TRAEFIK_VERSION -> $traefik"
    # Built as its own main module (from the module's source, which carries its go.sum and
    # replace directives): `go install pkg@version` refuses modules with replace directives.
    src=$(cd "$tmp" && GOFLAGS="" go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
      sed -n 's/.*"Dir": "\(.*\)".*/\1/p') && [[ -d $src ]] || { rm -rf "$tmp"; die "downloading Traefik failed"; }
    cp -r "$src" "$tmp/src" && chmod -R u+w "$tmp/src"
    (cd "$tmp/src" && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$tmp/traefik" ./cmd/traefik) \
      >>"$LOGS/build-traefik.log" 2>&1 || { rm -rf "$tmp"; die "building Traefik failed; see $LOGS/build-traefik.log"; }
    mv -f "$tmp/traefik" "$traefik"
    rm -rf "$tmp"
    log "built Traefik in $((SECONDS - start))s"
  fi
  build_e2e_module certmanager "cert-manager's controllers" "$(cert_manager_path)"
  if [[ ! -s $images/done ]]; then
    start=$SECONDS
    log "building the real nodes' images -> $images"
    rm -rf "$images.tmp.$$"
    mkdir -p "$images.tmp.$$"
    bash "$E2E_DIR/scripts/build-images.sh" "$images.tmp.$$" "$coredns" "$COREDNS_VERSION" "$traefik" "$TRAEFIK_VERSION" >"$images.tmp.$$/done" ||
      { rm -rf "$images.tmp.$$"; die "building images failed"; }
    rm -rf "$images"
    mv -f "$images.tmp.$$" "$images"
    log "built images in $((SECONDS - start))s"
  fi
}

ensure_real_node_packages() {
  local -a need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
  command -v iptables >/dev/null || need+=(iptables)
  command -v ipset >/dev/null || need+=(ipset)
  command -v conntrack >/dev/null || need+=(conntrack)
  command -v nsenter >/dev/null || need+=(util-linux)
  ((${#need[@]})) || return 0
  ((EUID == 0)) && command -v apt-get >/dev/null || die "real nodes need ${need[*]}: apt-get install -y ${need[*]}"
  log "installing ${need[*]} with apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } \
    >>"$LOGS/apt.log" 2>&1 || die "apt-get install ${need[*]} failed; see $LOGS/apt.log"
}

# ---------------------------------------------------------------------------
# Network: bridge, one namespace per node, routes
# ---------------------------------------------------------------------------

in_node() { local i=$1; shift; nsenter --net="/var/run/netns/$(real_netns "$i")" "$@"; }

# The machine's real-node network belongs to one stack at a time: the one named in
# REAL_OWNER_FILE. True when that is this stack.
owns_real_nodes() { [[ -r $REAL_OWNER_FILE && $(<"$REAL_OWNER_FILE") == "$STATE" ]]; }

# Takes the machine's real-node network for this stack, or dies naming the stack that has it.
claim_real_nodes() {
  owns_real_nodes && return 0
  # An owner whose state directory is gone (deleted without `down`) owns nothing any more.
  local owner
  owner=$(cat "$REAL_OWNER_FILE" 2>/dev/null) && [[ -n $owner && ! -d $owner ]] && rm -f "$REAL_OWNER_FILE"
  if ! (set -C && printf '%s\n' "$STATE" >"$REAL_OWNER_FILE") 2>/dev/null; then
    die "real nodes of another stack run on this machine ($(cat "$REAL_OWNER_FILE" 2>/dev/null)): stop it (LANDLORD_DEV_DIR=<that dir> e2e/cluster down) or start this one with LANDLORD_DEV_REAL_NODES=0"
  fi
}

# The bridge and the host's address on it, made before anything listens there (the stack's
# PostgreSQL and NATS answer the pods at that address, and on loopback, nowhere else).
real_bridge_up() {
  claim_real_nodes
  ip link show "$REAL_BRIDGE" >/dev/null 2>&1 || ip link add "$REAL_BRIDGE" type bridge
  ip addr replace "$REAL_HOST_IP/24" dev "$REAL_BRIDGE"
  ip link set "$REAL_BRIDGE" up
}

real_network_up() {
  local n=$1 i j ns
  real_bridge_up
  for ((i = 1; i <= n; i++)); do
    ns=$(real_netns "$i")
    ip netns del "$ns" 2>/dev/null || true
    ip link del "ll-n$i" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "ll-n$i" type veth peer name eth0 netns "$ns"
    ip link set "ll-n$i" master "$REAL_BRIDGE" up
    ip -n "$ns" addr add "$(real_node_ip "$i")/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    in_node "$i" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
    in_node "$i" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
    ip route replace "$(real_pod_cidr "$i")" via "$(real_node_ip "$i")"
    ip -n "$ns" route add "$SERVICE_CIDR" dev eth0
    for ((j = 1; j <= n; j++)); do
      ((j == i)) || ip -n "$ns" route add "$(real_pod_cidr "$j")" via "$(real_node_ip "$j")"
    done
  done
  # The host reaches Services the way a pod does: through a node's kube-proxy rules.
  ip route replace "$SERVICE_CIDR" via "$(real_node_ip 1)"
}

# ---------------------------------------------------------------------------
# Per-node configuration and processes
# ---------------------------------------------------------------------------

write_real_node_config() {
  local i=$1 dir name ip cg c
  dir=$(real_dir "$i")
  name=$(real_node_name "$i")
  ip=$(real_node_ip "$i")
  cg=$(real_cgroup "$i")
  mkdir -p "$dir"/{containerd,run,opt,cni,cni-ipam,kubelet,volumes,pod-logs}
  sign "node-n$i" "/O=system:nodes/CN=system:node:$name" "$CLIENT_EXT"
  write_kubeconfig "$dir/kubelet.kubeconfig" "node-n$i" "system:node:$name" "https://$REAL_HOST_IP:$APISERVER_PORT"
  write_kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy system:kube-proxy "https://$REAL_HOST_IP:$APISERVER_PORT"
  write_kubeconfig "$dir/kube-router.kubeconfig" kube-router system:kube-router "https://$REAL_HOST_IP:$APISERVER_PORT"

  cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd"
state = "$dir/run/state"
plugin_dir = ""
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$(real_sock "$i")"
[ttrpc]
  address = "$dir/run/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"
$(for r in "${MIRRORED_REGISTRIES[@]}"; do printf '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."%s"]\n  endpoint = ["http://%s"]\n' "$r" "$REGISTRY"; done)
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "landlord.local/pause:3.10"
  # Without it every sandbox fails ("can't get final child's PID from pipe"): this
  # machine's processes may not lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
EOF

  cat >"$dir/cni/10-landlord.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "landlord",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$dir/cni-ipam",
        "ranges": [[{"subnet": "$(real_pod_cidr "$i")"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$(real_sock "$i")
# This machine: cgroup v1 without systemd, and swap allowed.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Each node's pods under their own cgroup, so two kubelets on one machine never meet.
cgroupRoot: /$cg
cgroupsPerQOS: true
# Each node's own pod logs: a kubelet removes the log directories of pods it does not run.
podLogsDir: $dir/pod-logs
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: cluster.local
resolvConf: ""
podCIDR: $(real_pod_cidr "$i")
maxPods: 60
registerWithTaints:
- {key: $REAL_TAINT, value: "true", effect: NoSchedule}
# Images are imported, never pulled: never collect them, and never evict for a disk
# the whole machine shares.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF

  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
hostnameOverride: $name
mode: iptables
clusterCIDR: $REAL_CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the machine's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0}
EOF

  # cgroup v1: the node's root in every hierarchy; cpuset needs its cpus and mems first.
  for c in /sys/fs/cgroup/*/; do
    [[ -L ${c%/} ]] && continue
    mkdir -p "$c$cg"
  done
  if [[ -d /sys/fs/cgroup/cpuset/$cg ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$cg/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$cg/cpuset.mems"
  fi
}

registry_ready() { curl -sf --max-time 2 "http://$REGISTRY/v2/" >/dev/null; }
containerd_ready() { ctr -a "$(real_sock "$1")" version; }
kubelet_healthy() { in_node "$1" curl -sf --max-time 2 http://127.0.0.1:10248/healthz | grep -qx ok; }
kube_proxy_healthy() { in_node "$1" curl -s --max-time 2 -o /dev/null http://127.0.0.1:10256/healthz; }

real_nodes_up() {
  local n=$1 i images
  ((n > 0)) || return 0
  images=$(images_dir)
  real_network_up "$n"
  start registry "$images/registry" -listen "$REGISTRY" -dir "$STATE/registry"
  wait_until registry 15 registry_ready
  "$images/imagebuild" push -registry "$REGISTRY" "$images"/*.tar >>"$LOGS/registry.log" 2>&1 ||
    fail_component registry "could not push the images"
  ln -sfn "$(localk8s_path)" "$STATE/bin/kubelet"
  ln -sfn "$(localk8s_path)" "$STATE/bin/kube-proxy"
  for ((i = 1; i <= n; i++)); do
    write_real_node_config "$i"
    start "containerd-n$i" nsenter --net="/var/run/netns/$(real_netns "$i")" \
      containerd --config "$(real_dir "$i")/containerd.toml"
  done
  for ((i = 1; i <= n; i++)); do
    wait_until "containerd-n$i" 30 containerd_ready "$i"
    start "kubelet-n$i" nsenter --net="/var/run/netns/$(real_netns "$i")" \
      "$STATE/bin/kubelet" --config="$(real_dir "$i")/kubelet.yaml" \
      --kubeconfig="$(real_dir "$i")/kubelet.kubeconfig" \
      --hostname-override="$(real_node_name "$i")" --node-ip="$(real_node_ip "$i")" \
      --root-dir="$(real_dir "$i")/kubelet" --cert-dir="$(real_dir "$i")/kubelet/pki" \
      --node-labels="landlord.dev/node=real,topology.kubernetes.io/zone=zone-real" --v=1
    start "kube-proxy-n$i" nsenter --net="/var/run/netns/$(real_netns "$i")" \
      "$STATE/bin/kube-proxy" --config="$(real_dir "$i")/kube-proxy.yaml" --v=1
  done
}

# kube-router's firewall on every node, once its RBAC exists (real_cluster_addons).
real_nodes_firewall_up() {
  local n=$1 i
  ln -sfn "$(kube_router_path)" "$STATE/bin/kube-router"
  for ((i = 1; i <= n; i++)); do
    start "kube-router-n$i" nsenter --net="/var/run/netns/$(real_netns "$i")" \
      "$STATE/bin/kube-router" --kubeconfig="$(real_dir "$i")/kube-router.kubeconfig" \
      --hostname-override="$(real_node_name "$i")" \
      --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
      --enable-cni=false --enable-pod-egress=false --service-cluster-ip-range="$SERVICE_CIDR" \
      --health-port=20244 --metrics-port=0 --iptables-sync-period=1m --v=1
  done
  for ((i = 1; i <= n; i++)); do
    wait_until "kube-router-n$i" 60 kube_router_healthy "$i"
  done
}
kube_router_healthy() { in_node "$1" curl -sf --max-time 2 http://127.0.0.1:20244/healthz >/dev/null; }

real_nodes_ready() {
  local n
  n=$(kubectl_admin get nodes -l landlord.dev/node=real \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -cx True) || return 1
  (($n == $1))
}

# Cluster DNS (CoreDNS as a Deployment on the real nodes) and the real nodes' storage:
# local volumes made ahead of time (StorageClass landlord-local, no provisioner).
real_cluster_addons() {
  local n=$1 i k manifest=""
  for ((i = 1; i <= n; i++)); do
    for ((k = 1; k <= REAL_VOLUMES_PER_NODE; k++)); do
      mkdir -p "$(real_dir "$i")/volumes/pv$k"
      manifest+="---
apiVersion: v1
kind: PersistentVolume
metadata: {name: landlord-real-$i-pv$k, labels: {landlord.dev/node: real}}
spec:
  capacity: {storage: $REAL_VOLUME_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: landlord-local
  local: {path: $(real_dir "$i")/volumes/pv$k}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$(real_node_name "$i")]}]
"
    done
  done
  manifest+="---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: landlord-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
apiVersion: v1
kind: Endpoints
metadata: {name: kubernetes, namespace: default}
subsets:
- addresses: [{ip: $REAL_HOST_IP}]
  ports: [{name: https, port: $APISERVER_PORT, protocol: TCP}]
---
"
  manifest+=$(sed "s/@CLUSTER_DNS_IP@/$CLUSTER_DNS_IP/; s/@COREDNS_VERSION@/$COREDNS_VERSION/; s|@TAINT@|$REAL_TAINT|" \
    "$E2E_DIR/scripts/real-nodes-addons.yaml")
  printf '%s\n' "$manifest" | kubectl_admin apply -f - >>"$LOGS/kubelet-n1.log" 2>&1 ||
    fail_component kubelet-n1 "could not create the real nodes' volumes and CoreDNS"
}

# Makes the real nodes' Released volumes (their claim deleted with a tenant) Available again,
# emptied: the local volumes have no provisioner to do it, and a stack that stays up across
# test runs would run out of them. Only volumes under this stack's nodes are touched.
recycle_real_volumes() {
  local name path
  kubectl_admin get pv -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name} {.spec.local.path}{"\n"}{end}' |
    while read -r name path; do
      [[ $path == "$STATE/nodes/"*/volumes/* && -d $path ]] || continue
      find "$path" -mindepth 1 -delete
      kubectl_admin patch pv "$name" --type json -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null
      log "recycled volume $name"
    done
}

coredns_ready() {
  [[ $(kubectl_admin -n kube-system get deployment coredns -o jsonpath='{.status.readyReplicas}') == 1 ]]
}

# ---------------------------------------------------------------------------
# Teardown: containers (a shim outlives containerd, its containers outlive the shim),
# mounts, cgroups, namespaces, the bridge
# ---------------------------------------------------------------------------

real_nodes_teardown() {
  local n=$1 i c f pid round
  # Only the owner touches the machine's real-node network (another stack's must survive
  # this one's `down`); a stack that recorded none still cleans what it owns.
  owns_real_nodes || return 0
  ((n > 0)) || n=9
  for ((round = 0; round < 50; round++)); do
    local alive=0
    for ((i = 1; i <= n; i++)); do
      for f in /sys/fs/cgroup/pids/"$(real_cgroup "$i")" /sys/fs/cgroup/memory/"$(real_cgroup "$i")"; do
        [[ -d $f ]] || continue
        for pid in $(find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null); do
          kill -s KILL "$pid" 2>/dev/null && alive=1
        done
      done
      for pid in $(pgrep -f -- "-address $(real_sock "$i")" 2>/dev/null); do
        kill -s KILL "$pid" 2>/dev/null && alive=1
      done
    done
    ((alive)) || break
    sleep 0.1
  done
  # Mounts under the nodes' directories, deepest first.
  awk -v p="$STATE/nodes/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r f; do umount -l "$f" 2>/dev/null || true; done
  for ((i = 1; i <= n; i++)); do
    for c in /sys/fs/cgroup/*/"$(real_cgroup "$i")"; do
      [[ -d $c ]] && { find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
    done
    ip netns del "$(real_netns "$i")" 2>/dev/null || true
    ip link del "ll-n$i" 2>/dev/null || true
  done
  # Pod namespaces this stack's CNI made: those holding an address of its pods' network.
  for f in /var/run/netns/cni-*; do
    [[ -e $f ]] || continue
    if ip -n "${f##*/}" -4 -o addr show 2>/dev/null | grep -q " ${REAL_CLUSTER_CIDR%.0.0/16}\."; then
      ip netns del "${f##*/}" 2>/dev/null || true
    fi
  done
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  ip link del "$REAL_BRIDGE" 2>/dev/null || true
  rm -f "$REAL_OWNER_FILE"
}
