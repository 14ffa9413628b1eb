#!/usr/bin/env bash
# Installs the gitprio binary for the GitHub Action (action.yml runs this).
#
# 1. With a version (input `version`, else the action's tag such as `v0.2.0`),
#    download the release asset for this runner (RUNNER_OS, RUNNER_ARCH) and check
#    its sha256 against the checksum list (committed as `checksums.txt` beside
#    action.yml at release time, else the release's `SHA256SUMS`). A mismatch is
#    an error: a corrupt or tampered binary is never run, and never built around.
# 2. Without a version, when no release asset exists for the version or the
#    platform, or when it cannot be downloaded: build from the action's own source
#    with `cargo install --locked --path "$GITHUB_ACTION_PATH"`, which works before
#    the first release and on any platform Rust supports.
#
# Environment: RUNNER_OS, RUNNER_ARCH, RUNNER_TEMP, GITHUB_ACTION_PATH, GITHUB_PATH
# (set by the runner); INPUT_VERSION, GITHUB_ACTION_REF; GITPRIO_DOWNLOAD_URL (the
# release download base, default https://github.com/gitprio/gitprio/releases/download),
# GITPRIO_CHECKSUMS (a checksum list to use instead), GITPRIO_INSTALL_DIR.
set -euo pipefail

log() { printf 'gitprio-install: %s\n' "$*" >&2; }
fail() { printf '::error title=gitprio install::%s\n' "$*"; log "error: $*"; exit 1; }

action_path="${GITHUB_ACTION_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
install_dir="${GITPRIO_INSTALL_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/gitprio-bin}"
download_url="${GITPRIO_DOWNLOAD_URL:-https://github.com/gitprio/gitprio/releases/download}"
mkdir -p "$install_dir"

version="${INPUT_VERSION:-}"
if [[ -z "$version" && "${GITHUB_ACTION_REF:-}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]]; then
  version="$GITHUB_ACTION_REF"
fi
if [[ -n "$version" && "$version" != v* ]]; then
  version="v$version"
fi

target=""
exe=""
case "${RUNNER_OS:-$(uname -s)}:${RUNNER_ARCH:-$(uname -m)}" in
  Linux:X64 | Linux:x86_64) target="x86_64-unknown-linux-musl" ;;
  Linux:ARM64 | Linux:aarch64) target="aarch64-unknown-linux-musl" ;;
  macOS:X64 | Darwin:x86_64) target="x86_64-apple-darwin" ;;
  macOS:ARM64 | Darwin:arm64) target="aarch64-apple-darwin" ;;
  Windows:X64) target="x86_64-pc-windows-msvc" exe=".exe" ;;
  *) log "no release build for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}" ;;
esac

sha256_of() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | cut -d' ' -f1
  else
    shasum -a 256 "$1" | cut -d' ' -f1
  fi
}

fetch() { # url destination
  curl --proto '=https,file' --tlsv1.2 -fsSL --retry 3 --retry-delay 2 -o "$2" "$1"
}

# Prints the expected sha256 of asset $1, or nothing when no checksum list names it.
expected_sha256() {
  local list="${GITPRIO_CHECKSUMS:-}"
  if [[ -z "$list" && -f "$action_path/checksums.txt" ]]; then
    list="$action_path/checksums.txt"
  fi
  if [[ -z "$list" ]]; then
    list="$work/SHA256SUMS"
    fetch "$download_url/$version/SHA256SUMS" "$list" 2>/dev/null || return 0
  fi
  awk -v name="$1" '{ file = $2; sub(/^\*/, "", file); if (file == name) { print tolower($1); exit } }' "$list"
}

install_release() {
  local asset="gitprio-$version-$target.tar.gz"
  # In the runner's temp directory, and removed however the script ends: a self-hosted
  # runner keeps /tmp between jobs.
  work="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/gitprio-download.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  log "downloading $asset"
  if ! fetch "$download_url/$version/$asset" "$work/$asset"; then
    log "no release asset $asset at $download_url/$version"
    return 1
  fi
  local expected actual
  expected="$(expected_sha256 "$asset")"
  if [[ -z "$expected" ]]; then
    fail "no sha256 for $asset in the checksum list: refusing to run an unchecked binary"
  fi
  actual="$(sha256_of "$work/$asset")"
  if [[ "$actual" != "$expected" ]]; then
    fail "sha256 mismatch for $asset: expected $expected, got $actual; the download is corrupt or was tampered with"
  fi
  tar -xzf "$work/$asset" -C "$work"
  local binary
  binary="$(find "$work" -type f -name "gitprio$exe" | head -n 1)"
  [[ -n "$binary" ]] || fail "$asset holds no gitprio$exe"
  mkdir -p "$install_dir/bin"
  cp "$binary" "$install_dir/bin/gitprio$exe"
  chmod +x "$install_dir/bin/gitprio$exe"
  log "installed gitprio $version ($target), sha256 $actual"
}

install_from_source() {
  command -v cargo >/dev/null ||
    fail "cannot build gitprio: cargo is not installed (add a Rust toolchain step, or use a released version)"
  log "building gitprio from $action_path with cargo install --locked"
  cargo install --locked --quiet --path "$action_path" --root "$install_dir"
}

if [[ -n "$version" && -n "$target" ]] && install_release; then
  :
else
  install_from_source
fi

[[ -x "$install_dir/bin/gitprio$exe" ]] || fail "gitprio was not installed in $install_dir/bin"
if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "$install_dir/bin" >>"$GITHUB_PATH"
fi
"$install_dir/bin/gitprio$exe" --version >&2
