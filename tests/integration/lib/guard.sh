#!/bin/sh
# guard.sh PID DIR - clean up after a test script that was killed.
#
# test-lib.sh starts this, fully detached (its own session, not a job of
# the test shell, so the test's bare `wait` never waits for it), when a
# test first needs FUSE.  It sleeps until PID is gone.  A test that ends
# normally has already unmounted everything and removed DIR (its EXIT
# trap); one killed by SIGKILL (ctest's timeout) ran no trap, so this
# lazily unmounts every mount under DIR, waits (bounded) for the daemons
# recorded in DIR/.pids to exit, deletes the groups the test made and
# removes DIR.
pid=$1
dir=$2
[ -n "$pid" ] && [ -n "$dir" ] || exit 2
case $dir in /*) ;; *) exit 2 ;; esac

tail --pid="$pid" -s 0.5 -f /dev/null 2>/dev/null ||
	while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
[ -d "$dir" ] || exit 0

# Deepest first: a mount inside another mount's tree goes before it.
awk -v t="$dir/" 'index($2, t) == 1 { print length($2) "\t" $2 }' /proc/mounts |
	sort -rn | cut -f2- | while read -r mnt; do
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
	done
# The daemons notice the unmount and exit; they write their last audit
# and log lines into DIR, so wait for them before removing it.
for pidf in "$dir"/.pids/*; do
	[ -s "$pidf" ] || continue
	d=$(cat "$pidf" 2>/dev/null)
	case $d in '' | *[!0-9]*) continue ;; esac
	i=0
	while kill -0 "$d" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -0 "$d" 2>/dev/null && kill -KILL "$d" 2>/dev/null
done
[ -s "$dir/.groups" ] && while read -r g; do groupdel "$g" 2>/dev/null; done < "$dir/.groups"
rm -rf --one-file-system "$dir"
exit 0
