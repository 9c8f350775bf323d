#!/usr/bin/env bash
# Installs what heaptrace needs from the distribution (Debian/Ubuntu): bcc, kernel headers,
# tracefs, and the tools the tests compare against. Idempotent; run as root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-system.sh: must run as root (sudo $0)" >&2
    exit 1
fi

kver=$(uname -r)
export DEBIAN_FRONTEND=noninteractive

updated=0
apt_update_once() {
    if [ "$updated" = 0 ]; then apt-get update -qq; updated=1; fi
}

pkgs=(bpfcc-tools python3-bpfcc python3-venv python3-pip gcc g++ make strace sqlite3 libc6-dbg
      chromium gdb binutils util-linux
      # what the export tests read pprof profiles with: protoc and the published
      # profile.proto, and go tool pprof
      protobuf-compiler golang-github-google-pprof-dev golang-go
      # the Venice example runs with jemalloc (LD_PRELOAD); its test reads peak RSS with GNU time
      libjemalloc2 time)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# npm installs the speedscope app the export tests load a file in (into tests/tools/)
command -v npm >/dev/null || missing+=(npm)
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
if ! perf --version >/dev/null 2>&1; then
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
echo "system set-up done" >&2
