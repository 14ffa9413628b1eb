#!/usr/bin/env bash
# Packs gitprio's release assets the way scripts/action-install.sh expects them; the
# release workflow (.github/workflows/release.yml) and the Action's tests both use it.
#
#   release-package.sh pack BINARY TAG TARGET DIR   writes DIR/gitprio-TAG-TARGET.tar.gz,
#       a folder of that name holding the binary (after it ran `--version`), the README
#       and the licenses;
#   release-package.sh checksums DIR                writes DIR/SHA256SUMS for DIR/*.tar.gz.
set -euo pipefail

usage() {
  echo "usage: $0 pack BINARY TAG TARGET DIR | checksums DIR" >&2
  exit 2
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

case "${1:-}" in
  pack)
    [[ $# -eq 5 ]] || usage
    binary="$2" tag="$3" target="$4" dir="$5"
    exe=""
    [[ "$binary" == *.exe ]] && exe=".exe"
    name="gitprio-$tag-$target"
    mkdir -p "$dir"
    staging="$(mktemp -d)"
    trap 'rm -rf "$staging"' EXIT
    mkdir "$staging/$name"
    cp "$binary" "$staging/$name/gitprio$exe"
    cp "$root/README.md" "$root/LICENSE-APACHE" "$root/LICENSE-MIT" "$staging/$name/"
    "$staging/$name/gitprio$exe" --version
    tar -C "$staging" -czf "$dir/$name.tar.gz" "$name"
    ;;
  checksums)
    [[ $# -eq 2 ]] || usage
    cd "$2"
    sha256sum -- *.tar.gz | tee SHA256SUMS
    ;;
  *) usage ;;
esac
