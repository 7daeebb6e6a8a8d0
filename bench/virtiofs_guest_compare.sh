#!/usr/bin/env bash
# Guest-side throughput of examples/virtiofsd against QEMU's reference C virtiofsd, measured in
# the same run: a Linux guest (../shared/tools/virtiofs-guest) writes a 64 MiB file with dd
# (conv=fsync) and reads it back with its page cache dropped, --iterations times per boot,
# through each daemon in turn.
#
#   bench/virtiofs_guest_compare.sh [--virtiofsd PATH] [--cache never|auto|always] [--runs N]
#                                   [--iterations N] [--request-queues N] [--thread-pool-size N]
#
#   --virtiofsd PATH   our daemon (default: build/release/examples/virtiofsd, then build/dev)
#   --cache MODE       cache mode for BOTH daemons (ours --cache MODE, the reference
#                      -o cache=MODE with never spelled "none"); default auto
#   --runs N           guest boots per daemon, alternating ours/reference (default 2)
#   --iterations N     write+read rounds per boot (default 5)
#   --thread-pool-size N  our daemon's per-queue thread pool (default 0: the ring thread);
#                      the reference daemon uses its own default pool
#
# Reported per daemon: the median and the best of all rounds (other load on the host only ever
# slows a round down, so the best is the steadiest figure) and the ours/reference ratios. Under
# TCG (no usable KVM) the guest CPU is emulated: absolute figures are low, the ratio is what
# matters. Needs root for the reference daemon.
#
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tool=../shared/tools/virtiofs-guest
daemon=""
cache=auto
runs=2
iterations=5
queues=1
pool=0
while (($#)); do
  case $1 in
    --virtiofsd) daemon=$2; shift 2;;
    --cache) cache=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    --iterations) iterations=$2; shift 2;;
    --request-queues) queues=$2; shift 2;;
    --thread-pool-size) pool=$2; shift 2;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2;;
  esac
done
if [[ -z $daemon ]]; then
  for candidate in build/release/examples/virtiofsd build/dev/examples/virtiofsd; do
    [[ -x $candidate ]] && { daemon=$candidate; break; }
  done
fi
[[ -n $daemon && -x $daemon ]] || { echo "virtiofsd not built (use --virtiofsd PATH)" >&2; exit 1; }
case $cache in
  never) reference_cache=none;;
  auto | always) reference_cache=$cache;;
  *) echo "--cache must be never, auto or always" >&2; exit 2;;
esac

work=$(mktemp -d /tmp/virtiofs-compare.XXXXXX)
daemon_pid=""
cleanup() {
  if [[ -n $daemon_pid ]]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The guest script; times come from /proc/uptime (10 ms resolution).
cat >"$work/dd.sh" <<'GUEST'
now() { cut -d' ' -f1 /proc/uptime; }
for i in $(seq "$ITERATIONS"); do
  sync; echo 3 > /proc/sys/vm/drop_caches
  t0=$(now); dd if=/dev/zero of=dd.bin bs=1M count=64 conv=fsync 2>/dev/null; t1=$(now)
  echo 3 > /proc/sys/vm/drop_caches
  t2=$(now); dd if=dd.bin of=/dev/null bs=1M 2>/dev/null; t3=$(now)
  rm dd.bin
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
    w = b - a; r = d - c; if (w < 0.01) w = 0.01; if (r < 0.01) r = 0.01
    printf "RESULT %.2f %.2f\n", 64 / w, 64 / r }'
done
GUEST
sed -i "1i ITERATIONS=$iterations" "$work/dd.sh"

common=(--strict --timeout 300 --request-queues "$queues" --script "$work/dd.sh")

run_ours() {
  local share=$work/ours-share sock=$work/ours.sock
  rm -rf "$share"; mkdir -p "$share"
  "$daemon" --socket-path "$sock" --shared-dir "$share" --cache "$cache" \
    --request-queues "$queues" --thread-pool-size "$pool" 2>"$work/ours-daemon.log" &
  daemon_pid=$!
  "$tool" -q --socket "$sock" --backend-pid "$daemon_pid" "${common[@]}" >"$work/out" 2>"$work/err" ||
    { cat "$work/err" "$work/ours-daemon.log" >&2; return 1; }
  wait "$daemon_pid" || { echo "virtiofsd exited with $?" >&2; cat "$work/ours-daemon.log" >&2; return 1; }
  daemon_pid=""
  grep '^RESULT' "$work/out"
}

run_reference() {
  local share=$work/ref-share
  rm -rf "$share"; mkdir -p "$share"
  "$tool" -q --reference-daemon "$share" --daemon-opt "cache=$reference_cache" "${common[@]}" \
    >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; return 1; }
  grep '^RESULT' "$work/out"
}

echo "dd 64 MiB in the guest, cache=$cache, $runs boot(s) x $iterations round(s) per daemon," \
  "request queues: $queues"
echo "ours: $daemon"
: >"$work/ours.results"
: >"$work/reference.results"
for ((i = 1; i <= runs; i++)); do
  for who in ours reference; do
    "run_$who" >"$work/last"
    cat "$work/last" >>"$work/$who.results"
    awk -v b="$i" -v w="$who" '{ printf "  boot %d  %-9s  write %8.1f MB/s  read %8.1f MB/s\n", b, w, $2, $3 }' "$work/last"
  done
done

# "median best" of column $1 (2 = write, 3 = read) of results file $2
stats() {
  awk -v c="$1" '{ print $c }' "$2" | sort -g |
    awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s %s", m, v[NR] }'
}
read -r ow_med ow_best <<<"$(stats 2 "$work/ours.results")"
read -r or_med or_best <<<"$(stats 3 "$work/ours.results")"
read -r rw_med rw_best <<<"$(stats 2 "$work/reference.results")"
read -r rr_med rr_best <<<"$(stats 3 "$work/reference.results")"
awk -v owm="$ow_med" -v owb="$ow_best" -v orm="$or_med" -v orb="$or_best" \
    -v rwm="$rw_med" -v rwb="$rw_best" -v rrm="$rr_med" -v rrb="$rr_best" 'BEGIN {
  printf "\n                       write MB/s          read MB/s\n"
  printf "                       median    best      median    best\n"
  printf "  ours (fuse_backend)  %7.1f %7.1f    %7.1f %7.1f\n", owm, owb, orm, orb
  printf "  reference (QEMU C)   %7.1f %7.1f    %7.1f %7.1f\n", rwm, rwb, rrm, rrb
  printf "  ours / reference     %7.2f %7.2f    %7.2f %7.2f\n", owm / rwm, owb / rwb, orm / rrm, orb / rrb
}'
