#!/bin/sh
# gridha package: before removal (not before an upgrade). Stops the daemons
# while their binary still exists: hagd stops the services it runs (the
# backup node takes over), the DNS updater stops updating.
set -e
# deb: "remove" (an upgrade is "upgrade"); rpm: $1 is 0 on removal.
case "$1" in
remove|0) ;;
*) exit 0 ;;
esac
for s in hagd gridha-dns-updater; do
	if [ -d /run/systemd/system ]; then
		systemctl disable --now "$s.service" >/dev/null 2>&1 || :
	elif [ -x "/etc/init.d/$s" ]; then
		"/etc/init.d/$s" stop >/dev/null 2>&1 || :
	fi
done
exit 0
