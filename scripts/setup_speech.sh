#!/usr/bin/env bash
# Install the Debian speech tools the training corpus is built with: espeak-ng (text -> phonemes
# with durations, .pho files) and mbrola with the real-voice diphone voices us1, us2, us3, en1 and the
# German, French, Dutch, Afrikaans and Polish voices that read English with an accent
# (de5, de6, fr1, fr4, nl2, af1, pl1: core.corpus.speech.FOREIGN_VOICES), and the engines of
# core.corpus.engines: Festival with its HTS and diphone voices, Flite, RHVoice with its English voices
# and SVOX Pico (pico2wave).
# The mbrola and Pico packages live in Debian's contrib/non-free components: they are enabled by adding those
# components to the Debian entries already in this machine's apt sources (same URIs, no new hosts).
# Idempotent: does nothing when everything is installed. Needs root (or sudo).
set -euo pipefail

PACKAGES=(espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1
          mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4 mbrola-nl2 mbrola-af1 mbrola-pl1
          festival festvox-us-slt-hts festvox-kallpc16k festvox-rablpc16k festvox-kdlpc16k festvox-don
          flite rhvoice rhvoice-english libttspico-utils)

installed() {
    for package in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

if installed; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup_speech: needs root or sudo to install ${PACKAGES[*]}" >&2; exit 1; }
    SUDO="sudo"
fi

# deb822 sources (Components: main ...) and one-line sources (deb URI suite main ...):
# add contrib and non-free to every Debian entry that lacks them.
for file in /etc/apt/sources.list.d/*.sources; do
    [ -f "$file" ] || continue
    grep -q "debian" "$file" || continue
    $SUDO sed -i -E '/^Components:/{/contrib/!s/$/ contrib/; /non-free( |$)/!s/$/ non-free/}' "$file"
done
if [ -f /etc/apt/sources.list ]; then
    $SUDO sed -i -E '/^deb .*debian/{/ contrib/!s/$/ contrib/; / non-free( |$)/!s/$/ non-free/}' /etc/apt/sources.list
fi

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
installed || { echo "setup_speech: ${PACKAGES[*]} did not all install" >&2; exit 1; }
echo "setup_speech: installed ${PACKAGES[*]}"
