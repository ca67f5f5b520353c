#!/usr/bin/env bash
# torchcodec (the decoder behind datasets' Video/Audio features) needs the system FFmpeg
# libraries. Install Debian's `ffmpeg` when they are missing and we are root; otherwise say how.
set -euo pipefail
# grep reads all of ldconfig's list: `grep -q` stops at the first match, ldconfig then dies of SIGPIPE, and under
# pipefail the libraries read as missing (seen: a reinstall during `make test`'s clean-room step).
if ldconfig -p 2>/dev/null | grep 'libavcodec\.so' >/dev/null && command -v ffprobe >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "FFmpeg libraries missing: installing Debian's ffmpeg package" >&2
    bash "$(dirname "$0")/apt_install.sh" ffmpeg
    exit 0
fi
echo "warning: the FFmpeg libraries are missing and this is not a root Debian shell;" >&2
echo "         install them (e.g. 'sudo apt-get install ffmpeg') for datasets' Video decoding." >&2
