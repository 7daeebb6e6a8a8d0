#!/usr/bin/env bash
# compare.sh: the same file-system workloads, in one run, against
#   native        the plain host directory (no FUSE)
#   libfuse       libfuse's passthrough_ll example (Debian's libfuse3-dev copy, multithreaded)
#   ours          examples/passthrough in its default mode
#   ours+backing  examples/passthrough --passthrough-backing (kernel FUSE passthrough)
#   ours+uring    examples/passthrough -o io_uring (FUSE-over-io_uring; the script turns the
#                 fuse module's enable_uring on for the run and restores it afterwards)
# and a table of each figure with the ratios ours/native and ours/libfuse. See bench/README.md
# for what each figure means and the targets they are held to.
#
#   bench/compare.sh [--quick | --full] [--runs N] [--build-dir DIR]
#                    [--work-dir DIR | --ram-disk SIZE] [--targets "T..."] [--pipe-max-size BYTES]
#
#   --quick       small sizes, about 2-3 minutes in all (the default)
#   --full        larger files and longer random runs, about 10 minutes
#   --runs N      repeat every job N times and report each figure's best run (other load on the
#                 machine only ever slows a run down); default 1. Every target is mounted at once
#                 and the targets take turns job by job, each run starting with the next target
#   --build-dir   where to build our release binary (default: the release preset, build/release)
#   --work-dir    a directory on the disk to measure (default /var/tmp); a fresh
#                 compare.XXXXXX directory is made inside and removed at the end
#   --ram-disk SIZE  measure on an ext4 file system on a new zram block device of SIZE (e.g. 2G;
#                 it must hold every target's sequential file at once: 3G for --quick),
#                 made for the run and removed afterwards, instead of on --work-dir's disk: a
#                 disk with nothing cached below this kernel. A VM's virtual disk is cached by
#                 its host, so there "cold" reads run at disk or at memory speed depending on
#                 what the host kept, differently for each target and run (bench/README.md)
#   --targets     a subset of "native libfuse ours ours+backing ours+uring", e.g. for a quick
#                 check
#   --pipe-max-size  set fs.pipe-max-size to BYTES for the run (restored afterwards). Both
#                 daemons splice requests through a pipe that must hold the largest one (2 MiB
#                 for 1 MiB writes); a root daemon on an ordinary host may make it (it has
#                 CAP_SYS_RESOURCE), one in a container without that capability only up to this
#                 limit (default 1 MiB), and then reads instead. 4194304 reproduces the former.
#
# Needs root (it drops the page cache, and mounts). Installs what it needs with
# scripts/install-deps bench, compiles passthrough_ll and bench/workloads/metadata_ops.cpp into a
# temp dir, builds only the `passthrough` target. Everything it mounts is unmounted and only the
# daemons it started are stopped, also when it fails or is interrupted.
#
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=quick
build_dir=
work_parent=
targets="native libfuse ours ours+backing ours+uring"
runs=1
pipe_max_size=
ram_disk_size=

die() { echo "compare.sh: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --quick) mode=quick;;
    --full) mode=full;;
    --build-dir) (($# > 1)) || die "--build-dir needs a value"; build_dir=$2; shift;;
    --work-dir) (($# > 1)) || die "--work-dir needs a value"; work_parent=$2; shift;;
    --ram-disk) [[ ${2:-} =~ ^[1-9][0-9]*[KMG]$ ]] || die "--ram-disk needs a size such as 2G"
                ram_disk_size=$2; shift;;
    --targets) (($# > 1)) || die "--targets needs a value"; targets=$2; shift;;
    --runs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--runs needs a whole number >= 1"; runs=$2; shift;;
    --pipe-max-size) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--pipe-max-size needs a number of bytes"
                     pipe_max_size=$2; shift;;
    -h|--help) sed -n '2,/^# SPDX/{/^# SPDX/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0;;
    *) die "unknown argument '$1' (see --help)";;
  esac
  shift
done
[[ -z $work_parent || -z $ram_disk_size ]] || die "--work-dir and --ram-disk exclude each other"
work_parent=${work_parent:-/var/tmp}
read -r -a target_list <<<"$targets"
((${#target_list[@]})) || die "--targets needs at least one target"
for target in "${target_list[@]}"; do
  [[ " native libfuse ours ours+backing ours+uring " == *" $target "* ]] || die "unknown target '$target'"
done
((EUID == 0)) || die "run as root: it drops the page cache and mounts"

# --- sizes --------------------------------------------------------------------------------------
if [[ $mode == quick ]]; then
  seq_size=256M        # the sequential file
  rand_size=128M       # random I/O stays within the first rand_size bytes of it
  rand_runtime=2       # seconds per random job
  cached_loops=4       # passes over the (cached) file for the cached sequential figures
  file_count=10000
  tree=(usr/include/linux usr/include/x86_64-linux-gnu usr/include/c++)
else
  seq_size=1G
  rand_size=512M
  rand_runtime=15
  cached_loops=4
  file_count=10000
  tree=(usr/include)
fi

if [[ -n $ram_disk_size ]]; then
  ram_needed=$((${#target_list[@]} * $(numfmt --from=iec "$seq_size") + (512 << 20)))
  (($(numfmt --from=iec "$ram_disk_size") >= ram_needed)) ||
    die "--ram-disk $ram_disk_size cannot hold ${#target_list[@]} sequential files of $seq_size: give it $(numfmt --to=iec "$ram_needed")"
fi

# --- state and cleanup ------------------------------------------------------------------------
work=
tmpfs=
tools=
# Per target served now: its source directory, where its workloads run, its daemon.
declare -A src_of=() dir_of=() pid_of=()

# Unmounts $1's mount point and waits for its daemon to go (both daemons end when their mount
# goes away); a daemon still alive after 10 s gets SIGKILL. Only the pid we started.
stop_daemon() {
  local pid=${pid_of[$1]:-} mnt=${dir_of[$1]:-}
  [[ -n $pid ]] || return 0
  if mountpoint -q "$mnt"; then
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  fi
  local status=0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "compare.sh: daemon $pid did not exit after the unmount; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || status=$?
  unset "pid_of[$1]"
  return "$status"
}

uring_parameter=/sys/module/fuse/parameters/enable_uring
uring_before=
pipe_parameter=/proc/sys/fs/pipe-max-size
pipe_before=
ram_disk=      # the zram device number, once added
ram_mount=

cleanup() {
  local served
  for served in "${!pid_of[@]}"; do stop_daemon "$served" || true; done
  [[ -n $uring_before ]] && { echo "$uring_before" >"$uring_parameter" 2>/dev/null || true; }
  [[ -n $pipe_before ]] && { echo "$pipe_before" >"$pipe_parameter" 2>/dev/null || true; }
  [[ -n $tmpfs ]] && { umount "$tmpfs" 2>/dev/null || true; }
  [[ -n $work ]] && { rm -rf --one-file-system "$work" || true; }
  if [[ -n $ram_mount ]]; then
    if mountpoint -q "$ram_mount" && ! umount "$ram_mount"; then
      echo "compare.sh: cannot unmount $ram_mount; zram$ram_disk stays" >&2
    fi
    rmdir "$ram_mount" 2>/dev/null || true
  fi
  if [[ -n $ram_disk ]] && ! echo "$ram_disk" >/sys/class/zram-control/hot_remove 2>/dev/null; then
    echo "compare.sh: cannot remove zram$ram_disk (still in use?)" >&2
  fi
  [[ -n $tools ]] && rm -rf "$tools"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools --------------------------------------------------------------------------------------
"$repo/scripts/install-deps" bench
command -v pkg-config >/dev/null || "$repo/scripts/install-deps" test

if [[ -z $build_dir ]]; then
  (cd "$repo" && cmake --preset release >/dev/null)
  build_dir=$repo/build/release
else
  cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DFUSE_BACKEND_VERIFY_HEADERS=OFF >/dev/null
fi
echo "compare.sh: building passthrough (release) in $build_dir" >&2
cmake --build "$build_dir" -j2 --target passthrough >/dev/null
ours=$build_dir/examples/passthrough

tools=$(mktemp -d /tmp/fuse_backend_compare_tools.XXXXXX)
examples=/usr/share/doc/libfuse3-dev/examples
[[ -r $examples/passthrough_ll.c ]] || die "no $examples/passthrough_ll.c (libfuse3-dev)"
# shellcheck disable=SC2046  # pkg-config's flags are meant to split
gcc -O2 -o "$tools/passthrough_ll" "$examples/passthrough_ll.c" -I"$examples" \
    $(pkg-config fuse3 --cflags --libs)
g++ -O2 -std=c++20 -o "$tools/metadata_ops" "$repo/bench/workloads/metadata_ops.cpp"

if [[ -n $ram_disk_size ]]; then
  [[ -e /sys/class/zram-control ]] || modprobe zram 2>/dev/null || true
  [[ -w /sys/class/zram-control/hot_add ]] || die "--ram-disk: no /sys/class/zram-control (zram not in this kernel, or not loadable)"
  command -v mkfs.ext4 >/dev/null || die "--ram-disk: no mkfs.ext4 (Debian package e2fsprogs)"
  ram_disk=$(cat /sys/class/zram-control/hot_add)
  echo "$ram_disk_size" >"/sys/block/zram$ram_disk/disksize" || die "--ram-disk: cannot size zram$ram_disk"
  # Inode tables and journal written now, not by a kernel thread during the first workloads.
  mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "/dev/zram$ram_disk"
  ram_mount=$(mktemp -d /tmp/fuse_backend_compare_ram.XXXXXX)
  mount "/dev/zram$ram_disk" "$ram_mount"
  work_parent=$ram_mount
fi
work=$(mktemp -d "$work_parent/compare.XXXXXX")
results=$work/results.tsv
: >"$results"
tarball=$work/tree.tar
tar -cf "$tarball" -C / "${tree[@]}"
tree_files=$(tar -tf "$tarball" | grep -vc '/$')

# --- measuring helpers -----------------------------------------------------------------------
clk_tck=$(getconf CLK_TCK)

# utime + stime of the daemon (all its threads), in clock ticks; 0 for native.
cpu_ticks() {
  [[ -n ${pid_of[$target]:-} ]] || { echo 0; return; }
  local fields
  read -r -a fields < <(sed 's/.*) //' "/proc/${pid_of[$target]}/stat")
  echo $((fields[11] + fields[12]))  # fields 14 and 15 of stat(5), counted from field 3
}

drop_caches() {
  sync
  echo "$1" >/proc/sys/vm/drop_caches
}

# Writes back what earlier jobs left dirty, so that it is not written back during the next one:
# a previous target's untar left tens of MiB dirty, which the kernel flushed (compressing it into
# the RAM disk, on the CPUs the job needs) during the next target's new-file write + fsync.
settle() { sync; }

record() { printf '%s\t%s\t%s\n' "$target" "$1" "$2" >>"$results"; }

# fio KEY FIGURE ARGS...: one fio job on $dir/fio.dat; FIGURE is mib (MiB/s) or iops. Records the
# figure and the daemon CPU ticks + bytes moved during the job. A job that fails (a daemon refusing
# an I/O) is recorded as "fail" with fio's message as a note under the table; the run goes on.
run_fio() {
  local key=$1 figure=$2
  shift 2
  local before after line status=0
  settle
  before=$(cpu_ticks)
  line=$(fio --name="$key" --filename="$dir/fio.dat" --output-format=terse --terse-version=3 \
             "$@" 2>"$work/fio.err" | tail -n 1) || status=$?
  after=$(cpu_ticks)
  # terse v3: 5 error, 6/47 read/write KiB moved, 7/48 KiB/s, 8/49 IOPS
  if ((status != 0)) || [[ $(cut -d';' -f5 <<<"$line") != 0 ]]; then
    record "$key" fail
    printf '%s\tnote\t%s %s: %s\n' "$target" "$target" "$key" \
           "$(grep -m1 . "$work/fio.err" || echo "fio exit status $status")" >>"$results"
    echo "compare.sh: [$target] $key failed: $(head -n 1 "$work/fio.err")" >&2
    return 0
  fi
  awk -F';' -v key="$key" -v figure="$figure" -v target="$target" -v ticks=$((after - before)) '
    { value = figure == "mib" ? ($7 + $48) / 1024 : $8 + $49
      printf "%s\t%s\t%.1f\n", target, key, value
      printf "%s\tcpu:%s\t%d %d\n", target, key, ticks, ($6 + $47) * 1024 }' <<<"$line" >>"$results"
}

seconds_now() { date +%s.%N; }

# The targets in this run's order, set by the main loop: each run starts with the next one, so
# that no target always follows the same other one.
order=()

# Runs "$@" once for each target, in turn, with $target and $dir set: the targets are measured
# job by job, each job seconds apart on every target, so that this VM's drift in speed (up to 2x
# over minutes, bench/README.md) falls on all of them alike. Before session 16 each target ran
# all its jobs in a row, a minute apart from the next target's same job.
each_target() {
  for target in "${order[@]}"; do
    dir=${dir_of[$target]:-}
    "$@"
  done
}

# Cold sequential read (KEY, fio ARGS...): from the disk, whatever the job before left cached.
read_cold() {
  drop_caches 3
  run_fio "$1" mib "${@:2}"
}

# Cached sequential read (fio ARGS...): one untimed pass first, since another target's cold read
# may have dropped this file's pages since its own.
read_cached() {
  cat "$dir/fio.dat" >/dev/null
  run_fio seq_read_cached mib "$@"
}

untar() {
  mkdir "$dir/untar"
  settle
  local start end
  start=$(seconds_now)
  tar -xf "$tarball" -C "$dir/untar"
  end=$(seconds_now)
  record untar "$(awk -v n="$tree_files" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')"
  rm -rf "$dir/untar"
}

# Sequential, random, metadata and untar workloads on every target's directory on the disk.
run_disk_workloads() {
  local common=(--ioengine=psync --invalidate=0)
  echo "compare.sh: sequential 1 MiB" >&2
  each_target run_fio seq_write_fsync mib "${common[@]}" --rw=write --bs=1M --size="$seq_size" \
              --fallocate=none --end_fsync=1
  each_target run_fio seq_write_cached mib "${common[@]}" --rw=write --bs=1M --size="$seq_size" \
              --loops="$cached_loops"
  each_target read_cold seq_read_cold "${common[@]}" --rw=read --bs=1M --size="$seq_size"
  # fio, like cat and cp, calls posix_fadvise(SEQUENTIAL), which doubles a file's readahead;
  # Linux does not pass it on to a FUSE passthrough backing file (bench/README.md), so the
  # same read without the hint shows what that costs.
  each_target read_cold seq_read_cold_nohint "${common[@]}" --rw=read --bs=1M --size="$seq_size" \
              --fadvise_hint=0
  each_target read_cached "${common[@]}" --rw=read --bs=1M --size="$seq_size" --loops="$cached_loops"
  run_random_workloads ""
  run_metadata_workloads ""
  echo "compare.sh: untar ($tree_files files)" >&2
  each_target untar
}

# The metadata phases on $dir, keys suffixed with $1. One target runs all four before the next:
# each phase starts from what the one before it left (and stat from dropped dentries, which would
# drop the other targets' too).
metadata_phases() {
  local suffix=$1 phase out
  mkdir "$dir/meta"
  for phase in create stat readdir unlink; do
    settle
    # Drop dentries and inodes before stat: every stat is then a lookup (a LOOKUP for FUSE), not
    # a dcache hit. The page cache stays, so native stats do not wait for the disk either.
    [[ $phase == stat ]] && drop_caches 2
    out=$("$tools/metadata_ops" "$phase" "$dir/meta" "$file_count")
    record "meta_$phase$suffix" "$(awk '{ printf "%.0f", $2 / $3 }' <<<"$out")"
  done
  rmdir "$dir/meta"
}

run_metadata_workloads() {
  echo "compare.sh: metadata, $file_count files${1:+, tmpfs source}" >&2
  each_target metadata_phases "$1"
}

# Random 4 KiB I/O on every target's fio.dat (within its first rand_size bytes), keys suffixed
# with $1. O_DIRECT on the mount, so that every I/O is a request to the daemon and not a
# page-cache hit.
run_random_workloads() {
  local suffix=$1
  echo "compare.sh: random 4 KiB, O_DIRECT${suffix:+, tmpfs source}" >&2
  local random=(--bs=4k --size="$rand_size" --direct=1 --invalidate=0 --time_based
                --runtime="$rand_runtime" --norandommap --randrepeat=0)
  local aio=(--ioengine=libaio --iodepth=16)
  each_target run_fio "rand_read_psync$suffix" iops --ioengine=psync --rw=randread "${random[@]}"
  each_target run_fio "rand_write_psync$suffix" iops --ioengine=psync --rw=randwrite "${random[@]}"
  each_target run_fio "rand_read_aio16$suffix" iops "${aio[@]}" --rw=randread "${random[@]}"
  each_target run_fio "rand_write_aio16$suffix" iops "${aio[@]}" --rw=randwrite "${random[@]}"
}

# Starts $target's daemon (its command line in "$@", serving $src on $dir) and waits for the mount.
start_daemon() {
  "$@" &
  pid_of[$target]=$!
  for _ in $(seq 100); do
    mountpoint -q "$dir" && return 0
    kill -0 "${pid_of[$target]}" 2>/dev/null || die "[$target] daemon exited before mounting: $*"
    sleep 0.1
  done
  die "[$target] $dir not mounted after 10 s"
}

# Makes $target's source directory under $1 and, for a FUSE target, mounts it on a fresh
# directory; dir_of[$target] is where its workloads run.
serve() {
  local name=${target//+/-} src
  src=$1/src-$name
  src_of[$target]=$src
  mkdir "$src"
  dir=$src
  [[ $target == native ]] || { dir=$1/mnt-$name; mkdir "$dir"; }
  dir_of[$target]=$dir
  case $target in
    libfuse)
      # -f: stay in the foreground so that $! is the daemon. Multithreaded (no -s) and the
      # example's own defaults (cache=auto), with our daemon's default timeout (5 s, not the
      # example's 1 s) so that both let the kernel cache entries and attributes equally long.
      start_daemon "$tools/passthrough_ll" -f -o "source=$src,timeout=5" "$dir" 2>>"$work/libfuse.log";;
    ours) start_daemon "$ours" "$src" "$dir";;
    ours+backing) start_daemon "$ours" --passthrough-backing "$src" "$dir";;
    ours+uring) start_daemon "$ours" -o io_uring "$src" "$dir";;
  esac
}

unserve() {
  stop_daemon "$target" || die "[$target] the daemon did not exit cleanly (status $?)"
  rm -rf --one-file-system "${src_of[$target]}"
  [[ $dir == "${src_of[$target]}" ]] || rmdir "$dir"
  unset "dir_of[$target]" "src_of[$target]"
}

# --- the run ----------------------------------------------------------------------------------
echo "compare.sh: $mode run in $work on $(findmnt -n -o SOURCE,FSTYPE --target "$work")," \
     "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# The random workloads again with the source on tmpfs: the daemons treat O_DIRECT differently on
# the host (see bench/README.md), and on tmpfs every target's host I/O costs the same, so what
# remains is the FUSE round trip and the daemon.
if [[ " $targets " == *" ours+uring "* ]]; then
  [[ -w $uring_parameter ]] || die "ours+uring: no $uring_parameter (kernel without FUSE-over-io_uring)"
  uring_before=$(cat "$uring_parameter")
  echo 1 >"$uring_parameter"
fi
if [[ -n $pipe_max_size ]]; then
  pipe_before=$(cat "$pipe_parameter")
  echo "$pipe_max_size" >"$pipe_parameter" || die "cannot set $pipe_parameter"
fi
tmpfs=$work/tmpfs
mkdir "$tmpfs"
# Every target's random file at once, and room for the metadata files.
mount -t tmpfs -o "size=$((${#target_list[@]} * $(numfmt --from=iec "$rand_size") + (64 << 20)))" \
      compare_tmpfs "$tmpfs"
for run in $(seq "$runs"); do
  ((runs == 1)) || echo "compare.sh: run $run of $runs" >&2
  first=$(((run - 1) % ${#target_list[@]}))
  order=("${target_list[@]:first}" "${target_list[@]:0:first}")
  each_target serve "$work"
  run_disk_workloads
  each_target unserve
  each_target serve "$tmpfs"
  run_random_workloads _tmpfs
  run_metadata_workloads _tmpfs
  each_target unserve
done

# --- the table --------------------------------------------------------------------------------
echo
echo "fuse_backend compare.sh --$mode, best of $runs run(s): seq file $seq_size, random $rand_size x ${rand_runtime}s," \
     "$file_count files, untar $tree_files files; $(nproc) CPUs, kernel $(uname -r)," \
     "fs.pipe-max-size $(cat "$pipe_parameter")"
awk -F'\t' -v targets="$targets" -v hz="$clk_tck" '
  BEGIN {
    # key|label|unit|measured by fio (gets a row in the CPU table)
    n = split("seq_write_fsync|seq write 1M, new file+fsync|MiB/s|1;" \
              "seq_write_cached|seq write 1M, cached|MiB/s|1;" \
              "seq_read_cold|seq read 1M, cold|MiB/s|1;" \
              "seq_read_cold_nohint|seq read 1M, cold, no hint|MiB/s|1;" \
              "seq_read_cached|seq read 1M, cached|MiB/s|1;" \
              "rand_read_psync|rand read 4K psync|IOPS|1;" \
              "rand_write_psync|rand write 4K psync|IOPS|1;" \
              "rand_read_aio16|rand read 4K aio qd16|IOPS|1;" \
              "rand_write_aio16|rand write 4K aio qd16|IOPS|1;" \
              "rand_read_psync_tmpfs|rand read 4K psync, tmpfs|IOPS|1;" \
              "rand_write_psync_tmpfs|rand write 4K psync, tmpfs|IOPS|1;" \
              "rand_read_aio16_tmpfs|rand read 4K aio16, tmpfs|IOPS|1;" \
              "rand_write_aio16_tmpfs|rand write 4K aio16, tmpfs|IOPS|1;" \
              "meta_create|create|files/s|0;" \
              "meta_stat|stat (cold dentries)|files/s|0;" \
              "meta_readdir|readdir|entries/s|0;" \
              "meta_unlink|unlink|files/s|0;" \
              "meta_create_tmpfs|create, tmpfs|files/s|0;" \
              "meta_stat_tmpfs|stat (cold dentries), tmpfs|files/s|0;" \
              "meta_readdir_tmpfs|readdir, tmpfs|entries/s|0;" \
              "meta_unlink_tmpfs|unlink, tmpfs|files/s|0;" \
              "untar|untar|files/s|0", rows, ";")
    for (k = 1; k <= n; k++) {
      split(rows[k], f, "|")
      keys[k] = f[1]; labels[k] = f[2]; units[k] = f[3]; is_fio[k] = f[4]
    }
    nt = split(targets, t, " ")
  }
  # CPU per GiB: all runs together.
  $2 ~ /^cpu:/ { split($3, c, " "); ticks[$1] += c[1]; bytes[$1] += c[2]
                 wticks[$1, substr($2, 5)] += c[1]; wbytes[$1, substr($2, 5)] += c[2]; next }
  # One note per failed job ("TARGET KEY: message"), however many runs it failed in.
  $2 == "note" { split($3, w, ":"); if (!seen[w[1]]++) notes[++nn] = $3; next }
  # The best run of each figure; a job that failed in any run stays "fail".
  { if ($3 == "fail" || v[$1, $2] == "fail") v[$1, $2] = "fail"
    else if (v[$1, $2] == "" || $3 + 0 > v[$1, $2] + 0) v[$1, $2] = $3 }
  function ratio(a, b) { return (a == "" || b == "" || a == "fail" || b == "fail" || b == 0) ? "-" : sprintf("%.2fx", a / b) }
  function cell(x) { return x == "" ? "-" : x }
  function cpu(ti, by) { return by > 0 ? sprintf("%.3f", ti / hz / (by / 2^30)) : "" }
  END {
    printf "%-28s %-9s", "workload", "unit"
    for (i = 1; i <= nt; i++) printf " %12s", t[i]
    printf "   %11s %11s %11s %11s %11s %11s\n", "ours/native", "ours/libfuse", "bk/native", "bk/libfuse",
           "ur/native", "ur/libfuse"
    for (k = 1; k <= n; k++) {
      key = keys[k]
      printf "%-28s %-9s", labels[k], units[k]
      for (i = 1; i <= nt; i++) printf " %12s", cell(v[t[i], key])
      nat = v["native", key]; lf = v["libfuse", key]; o = v["ours", key]; b = v["ours+backing", key]
      u = v["ours+uring", key]
      printf "   %11s %11s %11s %11s %11s %11s\n", ratio(o, nat), ratio(o, lf), ratio(b, nat), ratio(b, lf),
             ratio(u, nat), ratio(u, lf)
    }
    print ""
    print "daemon CPU seconds per GiB moved (utime+stime of the daemon; lower is better)"
    printf "%-28s", "fio workload"
    for (i = 1; i <= nt; i++) if (t[i] != "native") printf " %12s", t[i]
    printf "   %12s %12s %12s\n", "ours/libfuse", "bk/libfuse", "ur/libfuse"
    for (k = 1; k <= n + 1; k++) {
      if (k <= n && !is_fio[k]) continue
      printf "%-28s", k <= n ? labels[k] : "all fio workloads"
      delete s
      for (i = 1; i <= nt; i++) {
        if (t[i] == "native") continue
        s[t[i]] = k <= n ? cpu(wticks[t[i], keys[k]], wbytes[t[i], keys[k]]) : cpu(ticks[t[i]], bytes[t[i]])
        printf " %12s", cell(s[t[i]])
      }
      printf "   %12s %12s %12s\n", ratio(s["ours"], s["libfuse"]), ratio(s["ours+backing"], s["libfuse"]),
             ratio(s["ours+uring"], s["libfuse"])
    }
    if (nn) print "\nfailed jobs:"
    for (i = 1; i <= nn; i++) print "  " notes[i]
  }' "$results"
