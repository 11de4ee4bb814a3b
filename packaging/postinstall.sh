#!/bin/sh
# gridha package: after install or upgrade. The daemons are not enabled or
# started here: hagd needs hagd.conf and its key, the DNS updater its
# configuration, which `gridha install rb-node` / `install dns` write (and
# enable the service). An upgrade restarts the daemons that were running,
# so that they run the new binary.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
# deb: "configure" with the old version; rpm: $1 is the number of installed
# copies, 2 on an upgrade.
upgrade=no
case "$1" in
configure) [ -n "$2" ] && upgrade=yes ;;
2) upgrade=yes ;;
esac
if [ "$upgrade" = yes ]; then
	for s in hagd gridha-dns-updater; do
		if [ -d /run/systemd/system ]; then
			systemctl try-restart "$s.service" >/dev/null 2>&1 || :
		elif [ -x "/etc/init.d/$s" ] && "/etc/init.d/$s" status >/dev/null 2>&1; then
			"/etc/init.d/$s" restart || :
		fi
	done
fi
exit 0
