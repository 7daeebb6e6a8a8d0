# Guest side of tests/integration/virtiofs_guest_test.cpp: runs in a Linux guest (busybox sh)
# with the virtio-fs share mounted at the current directory, served by examples/virtiofsd.
# Every section prints a "== name" marker; the host test checks both this output and, mostly,
# the files the commands left in the shared directory. Stops at the first failing command.
# SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
set -e

echo "== create"
echo hello > greeting.txt
cat greeting.txt
echo world >> greeting.txt
cat greeting.txt

echo "== dirs"
mkdir -p d1/sub d2
echo moved > d1/sub/file
mv d1/sub/file d2/renamed
mv d1 d3
echo gone > victim
rm victim
mkdir emptydir
rmdir emptydir

echo "== symlink"
ln -s greeting.txt link
readlink link
cat link

echo "== hardlink"
ln greeting.txt hard
stat -c '%h %i' greeting.txt hard

echo "== attrs"
echo 0123456789 > attrs.txt
chmod 640 attrs.txt
chown 1234:5678 attrs.txt
truncate -s 4 attrs.txt
stat -c '%a %u %g %s' attrs.txt

echo "== xattr"
setfattr -n user.color -v blue attrs.txt
getfattr --only-values -n user.color attrs.txt
echo
getfattr --only-values -n user.hostside tree/readme.txt
echo

echo "== big"
dd if=/dev/urandom of=big.bin bs=1M count=64 2>/dev/null
sha256sum big.bin
# Read it back through the daemon, not from the guest page cache.
sync
echo 3 > /proc/sys/vm/drop_caches
sha256sum big.bin
# With several vCPUs, read once more from the last one: a guest kernel with multiqueue
# virtio-fs (Linux >= 6.11) maps each CPU to its own request queue.
cpus=$(nproc)
if [ "$cpus" -gt 1 ]; then
  echo 3 > /proc/sys/vm/drop_caches
  taskset -c $((cpus - 1)) sha256sum big.bin
  taskset -c $((cpus - 1)) ls -l tree > /dev/null
fi

echo "== cpus"
# One worker per vCPU, all at once, each pinned to its CPU: a guest with multiqueue virtio-fs
# (Linux >= 6.11) sends a CPU's requests on that CPU's request queue, so with as many vCPUs as
# request queues every queue carries one worker's requests (the host test counts them).
pids=
for cpu in $(seq 0 $((cpus - 1))); do
  taskset -c "$cpu" sh -ec '
    mkdir "cpu$1"
    for i in $(seq 1 40); do echo "$1 $i" > "cpu$1/f$i"; done
    for i in $(seq 1 40); do cat "cpu$1/f$i" > /dev/null; done' worker "$cpu" &
  pids="$pids $!"
done
for pid in $pids; do wait "$pid"; done

echo "== tree"
ls -ln tree tree/sub
cat tree/readme.txt

echo "== end"
