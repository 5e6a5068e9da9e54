#!/usr/bin/env bash
# Installs the JavaScript package's dependencies (jco and preview2-shim, the
# exact versions in js/package-lock.json) into js/node_modules, for the tests
# of js/ that tests/e2e/javascript.rs runs. Does nothing when node_modules
# already holds what this lockfile describes.
set -euo pipefail
cd "$(dirname "$0")/../js"

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
    echo "error: js/ needs Node 20 or later; found: $(node --version 2>/dev/null || echo 'no node on PATH')" >&2
    exit 1
fi

stamp=node_modules/.fmes-installed
want="$(node --version) $(sha256sum package-lock.json | cut -d' ' -f1)"

if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "js/node_modules is up to date with js/package-lock.json"
    exit 0
fi

start=$(date +%s)
# npm ci installs exactly the lockfile and fails if package.json disagrees with it.
npm ci --no-audit --no-fund
echo "$want" >"$stamp"
echo "installed js/node_modules in $(($(date +%s) - start)) s"
