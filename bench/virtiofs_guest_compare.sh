#!/usr/bin/env bash
# Guest-side throughput of examples/virtiofsd against QEMU's reference C virtiofsd, measured in
# the same run: a Linux guest (../shared/tools/virtiofs-guest) writes a 64 MiB file with dd
# (conv=fsync) and reads it back with its page cache dropped, through each daemon in turn.
#
#   bench/virtiofs_guest_compare.sh [--virtiofsd PATH] [--cache never|auto|always] [--runs N]
#                                   [--request-queues N]
#
#   --virtiofsd PATH   our daemon (default: build/dev/examples/virtiofsd, then build/release)
#   --cache MODE       cache mode for BOTH daemons (ours --cache MODE, the reference
#                      -o cache=MODE with never spelled "none"); default auto
#   --runs N           guest boots per daemon, alternating ours/reference (default 3); the best
#                      run of each is reported (boot noise only ever slows a run down)
#
# Prints one line per run and a summary table with MB/s and ours/reference ratios. Under TCG
# (no usable KVM) the guest CPU is emulated, so absolute figures are low and the ratio is the
# meaningful number. Needs root for the reference daemon.
#
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tool=../shared/tools/virtiofs-guest
daemon=""
cache=auto
runs=3
queues=1
while (($#)); do
  case $1 in
    --virtiofsd) daemon=$2; shift 2;;
    --cache) cache=$2; shift 2;;
    --runs) runs=$2; shift 2;;
    --request-queues) queues=$2; shift 2;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2;;
  esac
done
if [[ -z $daemon ]]; then
  for candidate in build/dev/examples/virtiofsd build/release/examples/virtiofsd; do
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

# Times come from /proc/uptime (10 ms resolution), enough for transfers of a second or more.
cat >"$work/dd.sh" <<'EOF'
now() { cut -d' ' -f1 /proc/uptime; }
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now); dd if=/dev/zero of=dd.bin bs=1M count=64 conv=fsync 2>/dev/null; t1=$(now)
echo 3 > /proc/sys/vm/drop_caches
t2=$(now); dd if=dd.bin of=/dev/null bs=1M 2>/dev/null; t3=$(now)
rm dd.bin
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
  'BEGIN { printf "RESULT %.2f %.2f\n", 64 / (b - a > 0.01 ? b - a : 0.01), 64 / (d - c > 0.01 ? d - c : 0.01) }'
EOF

common=(--strict --timeout 180 --request-queues "$queues" --script "$work/dd.sh")

run_ours() {
  local share=$work/ours-share sock=$work/ours.sock
  rm -rf "$share"; mkdir -p "$share"
  "$daemon" --socket-path "$sock" --shared-dir "$share" --cache "$cache" \
    --request-queues "$queues" 2>"$work/ours-daemon.log" &
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

best_ours_w=0 best_ours_r=0 best_ref_w=0 best_ref_r=0
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
echo "dd 64 MiB in the guest, cache=$cache, $runs run(s) each, request queues: $queues"
echo "ours: $daemon"
for ((i = 1; i <= runs; i++)); do
  line=$(run_ours)
  read -r _ w r <<<"$line"
  printf '  run %d  ours       write %8.2f MB/s  read %8.2f MB/s\n' "$i" "$w" "$r"
  best_ours_w=$(max "$best_ours_w" "$w"); best_ours_r=$(max "$best_ours_r" "$r")
  line=$(run_reference)
  read -r _ w r <<<"$line"
  printf '  run %d  reference  write %8.2f MB/s  read %8.2f MB/s\n' "$i" "$w" "$r"
  best_ref_w=$(max "$best_ref_w" "$w"); best_ref_r=$(max "$best_ref_r" "$r")
done
awk -v ow="$best_ours_w" -v or="$best_ours_r" -v rw="$best_ref_w" -v rr="$best_ref_r" 'BEGIN {
  printf "\nbest of each        write MB/s   read MB/s\n"
  printf "  ours (fuse_backend) %10.2f  %10.2f\n", ow, or
  printf "  reference (QEMU C)  %10.2f  %10.2f\n", rw, rr
  printf "  ours / reference    %10.2f  %10.2f\n", ow / rw, or / rr
}'
