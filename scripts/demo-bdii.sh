#!/usr/bin/env bash
# make demo-bdii: EGI MAN05 on a local test bed: two real BDIIs (Debian bdii)
# behind one round-robin name on a real BIND primary; gridha install dns sets
# up the TSIG key, update-policy, record set and the dns-updater service; one
# BDII is killed, its record disappears; it is restarted and comes back.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then echo "make demo-bdii needs root (network namespaces)" >&2; exit 1; fi
exec go test -tags demo ./dnsupdater -run TestDemoBDII -count=1 -v
