#!/usr/bin/env bash
# Puts `heaptrace` on PATH, for root too: a link in BINDIR (default /usr/local/bin, which is on
# sudo's secure_path on Debian and Ubuntu) to a checkout's virtual environment entry point.
#
#   link-command.sh install ENTRY   link BINDIR/heaptrace -> ENTRY (an absolute path)
#   link-command.sh remove ENTRY    remove that link, if it still points to ENTRY
#
# A file at BINDIR/heaptrace that is not a link (a heaptrace installed another way) is left
# alone; a link to another checkout is replaced by the newest set-up.
set -euo pipefail

action=${1:-}
entry=${2:-}
bindir=${BINDIR:-/usr/local/bin}
link="$bindir/heaptrace"
if [ -z "$entry" ] || [ "${entry#/}" = "$entry" ]; then
    echo "usage: link-command.sh install|remove /absolute/path/to/.venv/bin/heaptrace" >&2
    exit 2
fi

case "$action" in
    install)
        if [ -e "$link" ] && [ ! -L "$link" ]; then
            echo "link-command.sh: $link exists and is not a link: left as it is" \
                 "(this checkout's heaptrace is $entry)" >&2
            exit 0
        fi
        if [ -L "$link" ] && [ "$(readlink "$link")" = "$entry" ]; then
            exit 0
        fi
        mkdir -p "$bindir"
        ln -sfn "$entry" "$link"
        echo "linked $link -> $entry" >&2
        ;;
    remove)
        if [ -L "$link" ] && [ "$(readlink "$link")" = "$entry" ]; then
            rm -f "$link"
            echo "removed $link" >&2
        fi
        ;;
    *)
        echo "usage: link-command.sh install|remove ENTRY" >&2
        exit 2
        ;;
esac
