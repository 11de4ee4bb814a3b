#!/bin/sh
# gridha package: after removal. /etc/gridha, hagd.conf and the keys stay
# (deb: until purge, which removes only the package's own files).
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
