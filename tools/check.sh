#!/usr/bin/env bash
# check.sh - install what is missing, build, and run the whole test suite.
#
#   tools/check.sh              # Release-ish build in build/, all tests
#   tools/check.sh --asan       # the same under AddressSanitizer + UBSan (build-asan/)
#   tools/check.sh --tsan       # the same under ThreadSanitizer (build-tsan/)
#
# In a sanitizer build every report lands in BUILD/sanitizer-logs/ and the
# test sanitizer/reports, run last, fails printing them (tests/README.md).
#
# The last line ctest prints ("100% tests passed, 0 tests failed out of N")
# is what CI reads.  Integration tests mount FUSE file systems: run as root
# (or a user allowed to use /dev/fuse with user_allow_other).
set -eu
cd "$(dirname "$0")/.."
. tools/deps.sh
# shellcheck disable=SC2086
vv_install $VV_PACKAGES

build=build
flags="-DVV_WERROR=ON"
if [ "${1:-}" = "--asan" ]; then
	build=build-asan
	flags="$flags -DVV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
elif [ "${1:-}" = "--tsan" ]; then
	build=build-tsan
	flags="$flags -DVV_SANITIZE_THREAD=ON -DCMAKE_BUILD_TYPE=Debug"
fi
cmake -S . -B "$build" $flags >/dev/null
cmake --build "$build" -j"$(nproc)"
cd "$build"
ctest --output-on-failure -j2 --timeout 900
