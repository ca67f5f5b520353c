#!/usr/bin/env bash
# The music-change evaluation set (harmonyset_hf/sync/music.py) renders General MIDI with FluidSynth and a
# GM soundfont. Install Debian's `fluidsynth` and `timgm6mb-soundfont` (6 MB) when missing and we are root;
# otherwise say how (the tests that need them skip).
set -euo pipefail
if command -v fluidsynth >/dev/null 2>&1 && { [ -n "${HARMONYSET_SOUNDFONT:-}" ] || ls /usr/share/sounds/sf2/*.sf2 >/dev/null 2>&1; }; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "FluidSynth or a GM soundfont missing: installing Debian's fluidsynth and timgm6mb-soundfont" >&2
    bash "$(dirname "$0")/apt_install.sh" fluidsynth timgm6mb-soundfont
    exit 0
fi
echo "warning: fluidsynth or a General MIDI soundfont is missing and this is not a root Debian shell;" >&2
echo "         install them (e.g. 'sudo apt-get install fluidsynth timgm6mb-soundfont') for the sync music set." >&2
