#!/usr/bin/env bash
# Copies mermaid's browser bundle into docs/assets/vendor/ so the docs draw their diagrams without a
# network (mkdocs-material otherwise loads mermaid from a CDN). The files are committed: building or
# reading the docs needs neither npm nor a network; only changing the version runs this script.
#
# To move to another release: set MERMAID_VERSION, run the script with MERMAID_SHA256 empty, check
# the diagrams (tests/test_docs_site.py renders them in headless Chromium), and put the printed
# digest in MERMAID_SHA256 (tests/test_docs_site.py checks the committed file against it).
# mkdocs-material 9.x expects mermaid 11 (its own CDN address is mermaid@11).
set -euo pipefail
cd "$(dirname "$0")/.."
MERMAID_VERSION=11.17.2
# sha256 of package/dist/mermaid.min.js in the npm package mermaid@$MERMAID_VERSION
MERMAID_SHA256=581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8
OUT=docs/assets/vendor

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mermaid@$MERMAID_VERSION" >/dev/null)
tar -xzf "$tmp/mermaid-$MERMAID_VERSION.tgz" -C "$tmp" package/dist/mermaid.min.js package/LICENSE
digest=$(sha256sum "$tmp/package/dist/mermaid.min.js" | cut -d' ' -f1)
if [ -n "$MERMAID_SHA256" ] && [ "$digest" != "$MERMAID_SHA256" ]; then
  echo "mermaid@$MERMAID_VERSION dist/mermaid.min.js has sha256 $digest, expected $MERMAID_SHA256" >&2
  exit 1
fi
mkdir -p "$OUT"
cp "$tmp/package/dist/mermaid.min.js" "$OUT/mermaid.min.js"
{
  echo "mermaid $MERMAID_VERSION (npm package mermaid, dist/mermaid.min.js), MIT licence:"
  echo "https://github.com/mermaid-js/mermaid"
  echo "The bundle also carries the licence notices of the libraries it includes, in its own comments."
  echo
  cat "$tmp/package/LICENSE"
} >"$OUT/mermaid.LICENSE.txt"
echo "mermaid $MERMAID_VERSION -> $OUT/mermaid.min.js (sha256 $digest)"
