#!/bin/sh
# sanitizer-logs.sh - the reports of a sanitizer build's test run, in one
# place (tests/README.md, "Sanitizer builds").
#
#   sanitizer-logs.sh clean DIR   # before the first test: an empty DIR
#   sanitizer-logs.sh check DIR   # after the last: fail, printing each report
#
# Every process of every test (daemons, CLI, as other uids) writes its
# report to DIR/<sanitizer>.<pid> (log_path in ASAN_OPTIONS, UBSAN_OPTIONS,
# TSAN_OPTIONS, set by CMakeLists.txt), so a report in a daemon whose test
# passed, or whose log the test deleted, is still seen here.
set -eu
dir=$2
case $1 in
clean)
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 1777 "$dir"              # tests run processes as other uids
	;;
check)
	n=0
	for f in "$dir"/*; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		echo "==== $f"
		head -n 80 "$f"
	done
	if [ "$n" -gt 0 ]; then
		echo "$n sanitizer report file(s) in $dir"
		exit 1
	fi
	echo "no sanitizer reports in $dir"
	;;
*)
	echo "usage: sanitizer-logs.sh clean|check DIR" >&2
	exit 2
	;;
esac
