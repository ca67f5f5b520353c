#!/usr/bin/env bash
# torchcodec (the decoder behind datasets' Video/Audio features) needs the system FFmpeg
# libraries. Install Debian's `ffmpeg` when they are missing and we are root; otherwise say how.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so' && command -v ffprobe >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "FFmpeg libraries missing: installing Debian's ffmpeg package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null
    apt-get install -y -qq --no-install-recommends ffmpeg </dev/null >/dev/null
    exit 0
fi
echo "warning: the FFmpeg libraries are missing and this is not a root Debian shell;" >&2
echo "         install them (e.g. 'sudo apt-get install ffmpeg') for datasets' Video decoding." >&2
