#!/usr/bin/env bash
# make demo: gridha builds the Resource Broker HA layout on a local test bed
# (state server, two rb nodes, a user's box), verifies it, and fails it over.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then echo "make demo needs root (network namespaces)" >&2; exit 1; fi
go build -o bin/gridha-demo ./testbed/cmd/gridha-demo
exec bin/gridha-demo -gridha bin/gridha "$@"
