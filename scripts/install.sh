#!/bin/sh
# Installs the gitprio binary from a GitHub release, without root:
#
#   curl -fsSL https://github.com/gitprio/gitprio/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --to /opt/bin --version v0.2.0
#
# It downloads the release's SHA256SUMS, picks the archive built for this machine
# (Linux x86_64/aarch64, static musl builds; macOS x86_64/arm64), checks the archive's
# sha256 against the list and only then unpacks `gitprio` into the directory:
# `--to DIR`, else $GITPRIO_INSTALL_DIR, else ~/.local/bin. A checksum that does not
# match, or an archive the list does not name, is an error and installs nothing.
#
# Options:   --to DIR         where to put `gitprio` (created if missing)
#            --version TAG    a release tag such as v0.2.0 (default: the latest release)
#            --print-target   print the release target of this machine and exit
# Environment: GITPRIO_INSTALL_DIR, GITPRIO_VERSION, and GITPRIO_DOWNLOAD_URL, the
# releases base (default https://github.com/gitprio/gitprio/releases; the suite points
# it at a release-shaped directory through file://).
set -eu

log() { printf 'gitprio-install: %s\n' "$*" >&2; }
fail() {
    log "error: $*"
    exit 1
}

install_dir="${GITPRIO_INSTALL_DIR:-}"
version="${GITPRIO_VERSION:-latest}"
base="${GITPRIO_DOWNLOAD_URL:-https://github.com/gitprio/gitprio/releases}"
print_target=""
while [ $# -gt 0 ]; do
    case "$1" in
        --to)
            [ $# -ge 2 ] || fail "--to needs a directory"
            install_dir="$2"
            shift 2
            ;;
        --version)
            [ $# -ge 2 ] || fail "--version needs a release tag such as v0.2.0"
            version="$2"
            shift 2
            ;;
        --print-target)
            print_target=1
            shift
            ;;
        -h | --help)
            sed -n '2,20p' "$0" 2>/dev/null | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) fail "unknown option $1 (options: --to DIR, --version TAG, --print-target)" ;;
    esac
done
if [ -z "$install_dir" ]; then
    [ -n "${HOME:-}" ] || fail "HOME is not set; pass --to DIR"
    install_dir="$HOME/.local/bin"
fi

case "$(uname -s):$(uname -m)" in
    Linux:x86_64 | Linux:amd64) target="x86_64-unknown-linux-musl" ;;
    Linux:aarch64 | Linux:arm64) target="aarch64-unknown-linux-musl" ;;
    Darwin:x86_64) target="x86_64-apple-darwin" ;;
    Darwin:arm64 | Darwin:aarch64) target="aarch64-apple-darwin" ;;
    *)
        fail "no release build for $(uname -s) $(uname -m); build from source instead: cargo install --locked --git https://github.com/gitprio/gitprio gitprio"
        ;;
esac
if [ -n "$print_target" ]; then
    echo "$target"
    exit 0
fi

case "$version" in
    latest) release="$base/latest/download" ;;
    v*) release="$base/download/$version" ;;
    *) release="$base/download/v$version" ;;
esac

fetch() { # url destination
    if command -v curl >/dev/null 2>&1; then
        curl --proto '=https,file' --tlsv1.2 -fsSL --retry 3 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
    else
        fail "neither curl nor wget is installed"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        fail "neither sha256sum nor shasum is installed, so the download cannot be checked"
    fi
}

work="$(mktemp -d "${TMPDIR:-/tmp}/gitprio-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT INT TERM

fetch "$release/SHA256SUMS" "$work/SHA256SUMS" ||
    fail "cannot download the checksum list $release/SHA256SUMS"
# The archive for this target, and its checksum: `<sha256>  gitprio-<tag>-<target>.tar.gz`.
line="$(awk -v suffix="-$target.tar.gz" '{ file = $2; sub(/^\*/, "", file); n = length(file) - length(suffix); if (n > 0 && substr(file, n + 1) == suffix && file ~ /^gitprio-/) { print tolower($1), file; exit } }' "$work/SHA256SUMS")"
[ -n "$line" ] || fail "release $version has no build for $target ($release/SHA256SUMS names none)"
expected="${line%% *}"
asset="${line#* }"
case "$asset" in
    */* | *..*) fail "unexpected archive name $asset in $release/SHA256SUMS" ;;
esac

log "downloading $asset"
fetch "$release/$asset" "$work/$asset" || fail "cannot download $release/$asset"
actual="$(sha256_of "$work/$asset")"
[ "$actual" = "$expected" ] ||
    fail "checksum mismatch for $asset: expected $expected, got $actual; nothing installed"

mkdir -p "$work/unpacked"
tar -xzf "$work/$asset" -C "$work/unpacked" || fail "cannot unpack $asset"
binary="$work/unpacked/${asset%.tar.gz}/gitprio"
[ -f "$binary" ] || fail "$asset has no ${asset%.tar.gz}/gitprio"

mkdir -p "$install_dir" || fail "cannot create $install_dir"
# Copy then rename, so a running gitprio is never overwritten in place.
cp "$binary" "$install_dir/.gitprio.new" || fail "cannot write to $install_dir"
chmod 755 "$install_dir/.gitprio.new"
mv -f "$install_dir/.gitprio.new" "$install_dir/gitprio"
log "installed $("$install_dir/gitprio" --version) to $install_dir/gitprio"
case ":${PATH:-}:" in
    *":$install_dir:"*) ;;
    *) log "note: $install_dir is not on PATH; add it: export PATH=\"$install_dir:\$PATH\"" ;;
esac
