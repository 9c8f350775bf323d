#!/usr/bin/env bash
# Installs what heaptrace needs from the distribution (Debian/Ubuntu). Idempotent; run as root.
#
#   setup-system.sh run     what running heaptrace needs: bcc, kernel headers, tracefs, and a
#                           compiler for the bundled example (`make demo`)
#   setup-system.sh test    that, and the tools the tests compare against (`make test`)
#   setup-system.sh --list run|test    print the packages of a set, install nothing
set -euo pipefail

# Running heaptrace: Debian's bcc module (never the unrelated PyPI "bcc"), a virtual
# environment that can import it, and gcc/make/libc headers for examples/grow.c.
RUN_PKGS=(python3-bpfcc python3-venv python3-pip gcc make libc6-dev
          # the Venice story compares glibc with jemalloc (LD_PRELOAD: make example-venice)
          libjemalloc2)
# The tests: the references they compare against (strace, gdb, perf below, readelf),
# the programs they trace (g++, sqlite3), libc's debug symbols, setarch/setpriv, the
# browser the flame graph's script is tested in, what reads pprof profiles (protoc and
# the published profile.proto, go tool pprof), GNU time (the Venice test's peak RSS).
TEST_PKGS=(g++ strace sqlite3 libc6-dbg chromium gdb binutils util-linux
           protobuf-compiler golang-github-google-pprof-dev golang-go time)

usage() {
    echo "usage: setup-system.sh run|test   (or --list run|test)" >&2
    exit 2
}

packages() {
    case "$1" in
        run) echo "${RUN_PKGS[@]}" ;;
        # npm installs the speedscope app the export tests load a file in (into tests/tools/);
        # perf: linux-perf on Debian, linux-tools on Ubuntu
        test) echo "${RUN_PKGS[@]} ${TEST_PKGS[@]} npm linux-perf" ;;
        *) usage ;;
    esac
}

if [ "${1:-}" = --list ]; then
    packages "${2:-}"
    exit 0
fi
mode=${1:-}
[ "$mode" = run ] || [ "$mode" = test ] || usage

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-system.sh: must run as root (sudo $0 $mode)" >&2
    exit 1
fi

kver=$(uname -r)
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update_once() {
    if [ "$updated" = 0 ]; then apt-get update -qq; updated=1; fi
}

pkgs=("${RUN_PKGS[@]}")
[ "$mode" = test ] && pkgs+=("${TEST_PKGS[@]}")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "$mode" = test ]; then
    command -v npm >/dev/null || missing+=(npm)
fi
if [ ! -e "/lib/modules/$kver/build/include" ]; then
    apt_update_once
    if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
        missing+=("linux-headers-$kver")
    elif [ "$(uname -m)" = aarch64 ]; then
        missing+=(linux-headers-arm64)
    else
        missing+=(linux-headers-amd64)
    fi
fi
# perf is the reference the stack tests compare against: Debian calls it linux-perf,
# Ubuntu ships it in linux-tools.
if [ "$mode" = test ] && ! perf --version >/dev/null 2>&1; then
    apt_update_once
    if apt-cache show linux-perf >/dev/null 2>&1; then
        missing+=(linux-perf)
    else
        missing+=(linux-tools-common linux-tools-generic)
    fi
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt_update_once
    echo "installing: ${missing[*]}" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# No headers package for this exact kernel (custom or cloud kernels): point bcc at the
# distribution's generic headers. BPF programs that only use stable UAPI compile fine.
if [ ! -e "/lib/modules/$kver/build/include" ]; then
    arch_dir=$( (ls -d /usr/src/linux-headers-*-amd64 /usr/src/linux-headers-*-arm64 2>/dev/null || true) | sort -V | tail -n 1)
    common_dir=$( (ls -d /usr/src/linux-headers-*-common 2>/dev/null || true) | sort -V | tail -n 1)
    if [ -z "$arch_dir" ] || [ -z "$common_dir" ]; then
        echo "setup-system.sh: no kernel headers found under /usr/src" >&2
        exit 1
    fi
    mkdir -p "/lib/modules/$kver"
    ln -sfn "$arch_dir" "/lib/modules/$kver/build"
    ln -sfn "$common_dir" "/lib/modules/$kver/source"
    echo "linked /lib/modules/$kver/build -> $arch_dir" >&2
fi

if [ ! -e /sys/kernel/tracing/events ] && ! mountpoint -q /sys/kernel/tracing; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || echo "note: could not mount tracefs (raw tracepoints do not need it)" >&2
fi
echo "system set-up done ($mode)" >&2
