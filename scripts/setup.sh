#!/usr/bin/env bash
# Installs what building and testing Chorus needs, idempotently: the pinned Rust
# toolchain, cargo-leptos, wasm-bindgen-cli at the version in Cargo.lock, and the
# npm tools (wasm-opt from binaryen). A second run only checks versions.
#
# Usage: scripts/setup.sh [--test]   (--test also installs what the tests run:
#        Debian's chromium and redis-server, and Playwright)
#
# The slow installs run side by side: each `cargo install` ends in one long
# single-threaded crate (cargo-leptos ≈ 20 minutes on 2 cores), so two of them at
# once keep both cores busy, and the downloads (apt, npm) overlap the compiling.
# Each job logs to target/setup/<job>.log, shown in full if it fails; at the end a
# table says how long each step took.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.11
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"
command -v rustup >/dev/null || { echo "setup: rustup is required (https://rustup.rs)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: node and npm are required" >&2; exit 1; }

LOGS=$PWD/target/setup
mkdir -p "$LOGS"
timings=()
setup_started=$SECONDS

# Runs "$@" in the background as job $1, logging to $LOGS/$1.log; the job writes
# how long it took to $LOGS/$1.seconds when it ends.
declare -A job_pids=()
start_job() {
  local name=$1; shift
  say "$name: started (log: ${LOGS#"$PWD"/}/$name.log)"
  rm -f "$LOGS/$name.seconds"
  (
    started=$SECONDS
    if "$@"; then status=0; else status=$?; fi
    echo $((SECONDS - started)) >"$LOGS/$name.seconds"
    exit $status
  ) >"$LOGS/$name.log" 2>&1 &
  job_pids[$name]=$!
}
# Waits for every job; fails after all have ended if any failed, with its log.
wait_jobs() {
  local failed=()
  for name in "${!job_pids[@]}"; do
    wait "${job_pids[$name]}" || failed+=("$name")
    timings+=("$name:$(cat "$LOGS/$name.seconds" 2>/dev/null || echo 0)")
  done
  for name in "${failed[@]}"; do
    echo "setup: $name failed; its log:" >&2
    cat "$LOGS/$name.log" >&2
  done
  [ ${#failed[@]} -eq 0 ]
}

# rustup 1.29 does not install the toolchain named in rust-toolchain.toml by itself.
# Everything below compiles with it, so it comes first.
started=$SECONDS
if ! rustup toolchain install >/dev/null 2>&1; then rustup toolchain install; fi
timings+=("rust toolchain:$((SECONDS - started))")

installed_version() { "$@" --version 2>/dev/null | awk '{print $2}' || true; }

# Build tools are not shipped: compile them without their release profiles' fat LTO
# and single codegen unit (cargo-leptos sets both), whose last crate would otherwise
# hold one core for most of the install. Measured here: cargo-leptos 951 s and
# wasm-bindgen-cli 285 s side by side, from 1315 s and ~700 s.
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16

if [ "$(installed_version cargo-leptos)" != "$CARGO_LEPTOS_VERSION" ]; then
  start_job cargo-leptos cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(installed_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]; then
  # Not --locked: the registry lacks one of its locked dependency versions.
  start_job wasm-bindgen-cli cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# wasm-opt for release builds, from npm's binaryen.
if [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  start_job npm-tools npm ci --no-audit --no-fund --loglevel=error
fi

if [ "${1:-}" = "--test" ]; then
  missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_install() {
      export DEBIAN_FRONTEND=noninteractive
      local sudo; sudo=$([ "$(id -u)" = 0 ] || echo sudo)
      $sudo apt-get update -qq
      # No recommends: chromium's (the setuid sandbox, extra fonts, desktop
      # integration) are not used by a headless --no-sandbox test browser.
      $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    }
    start_job apt apt_install
  fi
  if [ ! -d end2end/node_modules/@playwright/test ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    playwright_install() {
      (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    }
    start_job playwright playwright_install
  fi
fi

wait_jobs

if [ ${#job_pids[@]} -gt 0 ]; then
  say "done in $((SECONDS - setup_started)) s; each step:"
  for timing in "${timings[@]}"; do
    printf '  %-28s %5d s\n' "${timing%:*}" "${timing##*:}"
  done
fi
