#!/bin/sh
# gridha package: after install or upgrade. The daemons are not enabled or
# started here: hagd needs hagd.conf and its key, the DNS updater its
# configuration, which `gridha install rb-node` / `install dns` write (and
# enable the service).
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
[ "$upgrade" = yes ] || exit 0
# An upgrade restarts a running DNS updater on the new binary. Not hagd:
# restarting it stops the services it runs on a master, and the backup node
# takes them over. Restart it node by node when the site chooses.
if [ -d /run/systemd/system ]; then
	systemctl try-restart gridha-dns-updater.service >/dev/null 2>&1 || :
	systemctl is-active --quiet hagd.service && running=yes || running=no
elif [ -x /etc/init.d/gridha-dns-updater ] && /etc/init.d/gridha-dns-updater status >/dev/null 2>&1; then
	/etc/init.d/gridha-dns-updater restart >/dev/null || :
fi
if [ -x /etc/init.d/hagd ] && /etc/init.d/hagd status >/dev/null 2>&1 || [ "${running:-no}" = yes ]; then
	echo "gridha: hagd still runs the previous gridha; restart it when this node may hand over its services" \
		"(gridha hagd giveup GROUP on a master first), e.g. systemctl restart hagd or /etc/init.d/hagd restart"
fi
exit 0
