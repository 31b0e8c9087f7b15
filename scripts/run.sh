#!/usr/bin/env bash
# Builds the release app and serves it on http://127.0.0.1:3000 (in-memory rooms).
# Extra arguments go to the server, e.g. scripts/run.sh --jwt-secret "$(openssl rand -base64 32)"
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo leptos build --release --precompress
exec target/release/chorus "$@"
