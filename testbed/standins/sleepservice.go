package standins

import "strings"

// SleepInitScript is an LSB/SysV init script (the test bed has no systemd)
// for a service called name whose daemon is a sleep: what the tests of the
// service primitive and of verify start, stop, enable and disable. It stands
// for any site service's /etc/init.d script; exit codes follow LSB (status:
// 0 running, 1 dead with a pid file, 3 stopped).
func SleepInitScript(name string) string {
	return strings.ReplaceAll(sleepInit, "NAME", name)
}

const sleepInit = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          NAME
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: gridha test service NAME (a sleep)
### END INIT INFO
# chkconfig: 2345 99 01
PIDFILE=/run/NAME.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
start) running && exit 0
  sleep 1000000 </dev/null >/dev/null 2>&1 &
  echo $! > $PIDFILE ;;
stop) running && kill "$(cat $PIDFILE)"; rm -f $PIDFILE ;;
status) if running; then exit 0; elif [ -f $PIDFILE ]; then exit 1; else exit 3; fi ;;
restart) "$0" stop; "$0" start ;;
*) echo "Usage: $0 {start|stop|status|restart}" >&2; exit 2 ;;
esac
exit 0
`
