#!/usr/bin/env bash
# Start a throw-away Kubernetes control plane on 127.0.0.1 for e2e tests:
#   etcd (embedded), kube-apiserver, kube-controller-manager, kube-scheduler,
#   and kwok managing one fake node (kwok-node-0) whose pods become Ready.
#
# Usage: up.sh [STATE_DIR]      (default: $E2E_STATE, else ./.run)
#
# Writes into STATE_DIR: kubeconfig (admin, client cert, embedded data),
# env (ports/URLs, source-able), pki/, logs/<component>.log, pids/<component>.pid,
# etcd/ (data). Stop with down.sh STATE_DIR.
#
# Needs: bash, curl, openssl, python3 (free ports, JSON checks), Go (only when
# the binary must be (re)built into ${PORTICO_E2E_CACHE:-$HOME/.cache/portico-e2e}/bin).
set -euo pipefail

t0=$(date +%s.%N)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state="${1:-${E2E_STATE:-./.run}}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
node_name="${E2E_NODE_NAME:-kwok-node-0}"
timeout_s="${E2E_UP_TIMEOUT:-180}"

elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[up %5ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Refuse to start twice on one state dir.
if compgen -G "$state/pids/*.pid" >/dev/null; then
  for f in "$state"/pids/*.pid; do
    pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]]; then
      die "$(basename "$f" .pid) (pid $pid) from $state is still running; run down.sh $state first"
    fi
  done
fi

bin="$("$here/build.sh")"
[[ -x "$bin" ]] || die "no binary at $bin"

rm -rf "$state/etcd" "$state/logs" "$state/pids"
mkdir -p "$state/pki" "$state/logs" "$state/pids"
mkdir -m 700 "$state/etcd"
pki="$state/pki"

# ---------------------------------------------------------------- ports
read -r p_etcd p_peer p_api p_kcm p_sched p_kwok < <(python3 - <<'EOF'
import socket
socks = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

# ---------------------------------------------------------------- pki
# Reused across runs of the same state dir; generated once.
gen_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
sign() { # name subject extfile-content
  local name=$1 subj=$2 ext=$3
  gen_key "$pki/$name.key"
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile <(printf '%s\n' "$ext") -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}
if [[ ! -s "$pki/admin.crt" || ! -s "$pki/front-proxy-client.crt" ]]; then
  log "generating certificates and keys in $pki"
  gen_key "$pki/ca.key"
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=portico-e2e-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/ca.crt" 2>/dev/null
  sign apiserver "/CN=kube-apiserver" \
"basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=kubernetes-admin" \
"basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  # Front-proxy (request-header) CA + client cert for the aggregator, as kubeadm does;
  # without it every delegating component logs "missing content for CA bundle".
  gen_key "$pki/front-proxy-ca.key"
  openssl req -x509 -new -key "$pki/front-proxy-ca.key" -subj "/CN=portico-e2e-front-proxy-ca" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$pki/front-proxy-ca.crt" 2>/dev/null
  gen_key "$pki/front-proxy-client.key"
  openssl req -new -key "$pki/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$pki/fp.csr" 2>/dev/null
  openssl x509 -req -in "$pki/fp.csr" -CA "$pki/front-proxy-ca.crt" -CAkey "$pki/front-proxy-ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') \
    -out "$pki/front-proxy-client.crt" 2>/dev/null
  rm -f "$pki/fp.csr"
  # Service-account token signing key pair.
  gen_key "$pki/sa.key"
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  # Static bearer token for an admin user (token auth), e.g. for curl.
  printf '%s,token-admin,token-admin-uid,"system:masters"\n' "$(openssl rand -hex 24)" > "$pki/tokens.csv"
fi
admin_token="$(cut -d, -f1 "$pki/tokens.csv")"

# ---------------------------------------------------------------- kubeconfig
b64() { base64 -w0 < "$1"; }
cat > "$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: portico-e2e
  cluster:
    server: https://127.0.0.1:$p_api
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: portico-e2e
  context:
    cluster: portico-e2e
    user: admin
current-context: portico-e2e
EOF
chmod 600 "$state/kubeconfig"

cat > "$state/env" <<EOF
export KUBECONFIG=$state/kubeconfig
export E2E_STATE=$state
export E2E_APISERVER=https://127.0.0.1:$p_api
export E2E_CA=$pki/ca.crt
export E2E_ADMIN_TOKEN=$admin_token
export E2E_ETCD=http://127.0.0.1:$p_etcd
export E2E_KCM_PORT=$p_kcm
export E2E_SCHEDULER_PORT=$p_sched
export E2E_KWOK_PORT=$p_kwok
export E2E_NODE=$node_name
export E2E_BIN=$bin
EOF

# ---------------------------------------------------------------- helpers
start() { # name args...
  local name=$1; shift
  # setsid: own session, so the component outlives this script and is not hit
  # by signals sent to the caller's process group. exec keeps the PID.
  setsid "$bin" "$name" "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! > "$state/pids/$name.pid"
  log "started $name (pid $!)"
}
alive() { kill -0 "$(cat "$state/pids/$1.pid")" 2>/dev/null || { tail -n 30 "$state/logs/$1.log" >&2; die "$1 exited; log: $state/logs/$1.log"; }; }
wait_for() { # description component command...
  local what=$1 comp=$2; shift 2
  local deadline=$(( $(date +%s) + timeout_s ))
  until "$@" >/dev/null 2>&1; do
    [[ -n "$comp" ]] && alive "$comp"
    (( $(date +%s) < deadline )) || die "timed out waiting for $what"
    sleep 0.2
  done
  log "$what: ok"
}
api() { curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"; }
api_url="https://127.0.0.1:$p_api"

# ---------------------------------------------------------------- etcd
start etcd --name=portico-e2e --data-dir="$state/etcd" \
  --listen-client-urls="http://127.0.0.1:$p_etcd" --listen-peer-urls="http://127.0.0.1:$p_peer" \
  --unsafe-no-fsync --log-level=warn
wait_for "etcd health" etcd sh -c "curl -sf http://127.0.0.1:$p_etcd/health | grep -q '\"health\":\"true\"'"

# ---------------------------------------------------------------- kube-apiserver
start kube-apiserver \
  --etcd-servers="http://127.0.0.1:$p_etcd" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$p_api" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --token-auth-file="$pki/tokens.csv" \
  --requestheader-client-ca-file="$pki/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$pki/front-proxy-client.crt" \
  --proxy-client-key-file="$pki/front-proxy-client.key" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --profiling=false \
  --cert-dir="$state/pki/apiserver-certdir"
wait_for "kube-apiserver /readyz" kube-apiserver api "$api_url/readyz"

# ---------------------------------------------------------------- controllers
start kube-controller-manager \
  --kubeconfig="$state/kubeconfig" \
  --authentication-kubeconfig="$state/kubeconfig" --authorization-kubeconfig="$state/kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$p_kcm" \
  --leader-elect=false \
  --use-service-account-credentials=false \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-cidr=10.244.0.0/16 --service-cluster-ip-range=10.96.0.0/16 \
  --controllers=deployment-controller,replicaset-controller,endpointslice-controller,endpointslice-mirroring-controller,endpoints-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,namespace-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller,service-cidr-controller,job-controller,pod-garbage-collector-controller,statefulset-controller,daemonset-controller,node-lifecycle-controller \
  --profiling=false
start kube-scheduler \
  --kubeconfig="$state/kubeconfig" \
  --authentication-kubeconfig="$state/kubeconfig" --authorization-kubeconfig="$state/kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$p_sched" \
  --leader-elect=false \
  --profiling=false

# ---------------------------------------------------------------- kwok + node
"$bin" kwok-stages > "$state/kwok-stages.yaml"
# E2E_POD_STAGES=none: kwok manages the node only; the harness's kubelet
# (e2e/harness/kubelet.py) runs the Pods and writes their status.
if [[ "${E2E_POD_STAGES:-kwok}" == none ]]; then
  python3 - "$state/kwok-stages.yaml" <<'EOF'
import sys
path = sys.argv[1]
docs = open(path).read().split("\n---\n")
kept = [d for d in docs if "kind: Pod" not in d]
open(path, "w").write("\n---\n".join(kept) + "\n")
EOF
fi
kwok_logs=()
if [[ "${E2E_POD_STAGES:-kwok}" == none ]]; then
  # Container logs through the API (`kubectl logs`): the API server reaches
  # the node's kubelet port, which is kwok's server (HTTPS, a self-signed
  # certificate the API server does not check, as for any kubelet without
  # --kubelet-certificate-authority); the harness's kubelet writes each
  # container's log in the CRI format and names the file in a Logs object.
  kwok_dir="$(cd /tmp && GOFLAGS=-mod=mod go mod download -json sigs.k8s.io/kwok@v0.8.0 \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')"
  "${KUBECTL:-kubectl}" --kubeconfig "$state/kubeconfig" apply \
    -f "$kwok_dir/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml" >/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$node_name" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$pki/kwok.key" -out "$pki/kwok.crt" 2>/dev/null
  kwok_logs=(--enable-crds=Logs --node-port="$p_kwok"
    --tls-cert-file="$pki/kwok.crt" --tls-private-key-file="$pki/kwok.key")
fi
start kwok \
  --kubeconfig="$state/kubeconfig" \
  --config="$state/kwok-stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=127.0.0.1 \
  --cidr=10.244.0.0/24 \
  --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$p_kwok" \
  "${kwok_logs[@]}"

node_json=$(cat <<EOF
{"apiVersion":"v1","kind":"Node",
 "metadata":{"name":"$node_name",
   "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
   "labels":{"type":"kwok","kubernetes.io/hostname":"$node_name","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","node-role.kubernetes.io/agent":""}},
 "spec":{},
 "status":{
   "capacity":{"cpu":"32","memory":"256Gi","pods":"110","ephemeral-storage":"100Gi"},
   "allocatable":{"cpu":"32","memory":"256Gi","pods":"110","ephemeral-storage":"100Gi"},
   "nodeInfo":{"architecture":"amd64","operatingSystem":"linux","kubeletVersion":"fake","kubeProxyVersion":"fake","containerRuntimeVersion":"fake","kernelVersion":"fake","osImage":"fake","machineID":"","systemUUID":"","bootID":""}}}
EOF
)
api -X POST -H 'Content-Type: application/json' --data "$node_json" "$api_url/api/v1/nodes" >/dev/null \
  || die "could not create node $node_name"
log "created node $node_name"

node_ready() {
  api "$api_url/api/v1/nodes/$node_name" | python3 -c '
import json, sys
n = json.load(sys.stdin)
ok = any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
# The TaintNodesByCondition admission plugin puts node.kubernetes.io/not-ready
# on every new node; node-lifecycle-controller removes it once Ready.
tainted = any(t["key"].startswith("node.kubernetes.io/") for t in n.get("spec", {}).get("taints", []))
sys.exit(0 if ok and not tainted else 1)'
}
wait_for "node $node_name Ready and untainted" kwok node_ready
wait_for "kube-controller-manager /healthz" kube-controller-manager curl -sfk "https://127.0.0.1:$p_kcm/healthz"
wait_for "kube-scheduler /healthz" kube-scheduler curl -sfk "https://127.0.0.1:$p_sched/healthz"
# Pods can be created only once the namespace's default ServiceAccount exists.
wait_for "serviceaccount default/default" kube-controller-manager api "$api_url/api/v1/namespaces/default/serviceaccounts/default"

log "cluster up: KUBECONFIG=$state/kubeconfig (source $state/env)"
echo "up.sh elapsed: $(elapsed)s"
