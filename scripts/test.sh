#!/usr/bin/env bash
# Every check CI runs: formatting, clippy (server and WASM), unit and integration
# tests, the release build of server + WASM client, a smoke test of the release
# binary, and the Playwright end-to-end tests in Debian's Chromium (once on in-memory
# rooms, once with every server on a redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
source scripts/env.sh
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (protocol, server, app with ssr, bench)"
cargo clippy -p chorus-protocol -p chorus-server -p app -p chorus-bench --all-targets --locked -- -D warnings
step "clippy (frontend and app for wasm32 with hydrate)"
cargo clippy -p frontend --target wasm32-unknown-unknown --locked -- -D warnings

step "unit and integration tests"
cargo test -p chorus-protocol -p chorus-server -p app -p chorus-bench --locked

step "cargo leptos build --release --precompress"
cargo leptos build --release --precompress

step "release binary smoke test"
node scripts/smoke.mjs

step "end-to-end tests (Playwright, Chromium), in-memory rooms"
(cd end2end && npx playwright test)

step "end-to-end tests again, every server on Redis"
(cd end2end && CHORUS_E2E_ENGINE=redis npx playwright test)
