#!/usr/bin/env bash
# Stop everything started by up.sh (and by ../metallb/up.sh) for one state dir,
# by the PIDs recorded in STATE_DIR/pids/*.pid. SIGTERM first, SIGKILL after
# ${E2E_DOWN_GRACE:-15}s. Only PIDs whose command line still is the recorded
# binary are signalled (guards against PID reuse).
#
# Usage: down.sh [STATE_DIR]    (default: $E2E_STATE, else ./.run)
#        down.sh --purge [STATE_DIR]   also delete the state dir afterwards
set -uo pipefail

purge=0
if [[ "${1:-}" == "--purge" ]]; then purge=1; shift; fi
state="${1:-${E2E_STATE:-./.run}}"
[[ -d "$state/pids" ]] || { echo "down.sh: nothing to stop in $state" >&2; exit 0; }
state="$(cd "$state" && pwd)"
grace="${E2E_DOWN_GRACE:-15}"

# Stop in tiers, each tier in parallel: clients (controllers, kwok, metallb,
# anything else with a pid file), then kube-apiserver, then etcd last.
tier1=() tier2=() tier3=()
for f in "$state"/pids/*.pid; do
  [[ -f "$f" ]] || continue
  case "$(basename "$f" .pid)" in
    kube-apiserver) tier2+=("$f") ;;
    etcd) tier3+=("$f") ;;
    *) tier1+=("$f") ;;
  esac
done

running() { # pid -> alive and not a zombie (an unreaped orphan counts as gone)
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z ]]
}

ours() { # pid -> is it still one of our processes?
  local pid=$1 cmd
  cmd="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *portico-cluster* || "$cmd" == *metallb-controller* ]]
}

stop() { # name pid
  local name=$1 pid=$2 i
  if ! running "$pid" || ! ours "$pid"; then
    echo "down.sh: $name (pid $pid) not running" >&2
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    running "$pid" || { echo "down.sh: stopped $name (pid $pid)" >&2; return 0; }
    sleep 0.1
  done
  echo "down.sh: $name (pid $pid) ignored SIGTERM for ${grace}s, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    running "$pid" || return 0
    sleep 0.1
  done
  echo "down.sh: $name (pid $pid) still alive" >&2
  return 1
}

stop_tier() {
  local f pids=() rc=0
  for f in "$@"; do
    ( stop "$(basename "$f" .pid)" "$(cat "$f")" && rm -f "$f" ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

rc=0
(( ${#tier1[@]} )) && { stop_tier "${tier1[@]}" || rc=1; }
(( ${#tier2[@]} )) && { stop_tier "${tier2[@]}" || rc=1; }
(( ${#tier3[@]} )) && { stop_tier "${tier3[@]}" || rc=1; }
if (( purge && rc == 0 )); then rm -rf "$state"; fi
exit $rc
