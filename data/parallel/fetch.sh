#!/usr/bin/env bash
# Download the Debian 12 (bookworm) packages listed in packages.tsv, check their
# SHA-256 (amd64 .debs; set PARALLEL_SKIP_SHA=1 on another architecture or when a
# point release replaced a package) and extract each one into WORK/src/<package>/.
#
#   bash data/parallel/fetch.sh /tmp/l10n        # -> /tmp/l10n/debs, /tmp/l10n/src
#   python3 data/parallel/build.py /tmp/l10n/src # -> data/parallel/en-{de,fr}/*.tsv
#
# Needs apt-get (after `apt-get update`) and dpkg-deb; nothing is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${1:?usage: fetch.sh WORKDIR}"
mkdir -p "$work/debs" "$work/src"
cd "$work/debs"
grep -v '^#' "$here/packages.tsv" | while IFS=$'\t' read -r pkg ver _src _lic sha; do
  ls "${pkg}"_*.deb >/dev/null 2>&1 || apt-get download "${pkg}=${ver}"
  deb=$(ls "${pkg}"_*.deb | head -n1)
  if [ "${PARALLEL_SKIP_SHA:-0}" != 1 ]; then
    echo "${sha}  ${deb}" | sha256sum -c --quiet - || { echo "checksum mismatch: $deb" >&2; exit 1; }
  fi
  rm -rf "$work/src/$pkg"
  dpkg-deb -x "$deb" "$work/src/$pkg"
done
echo "extracted $(ls "$work/src" | wc -l) packages into $work/src"
