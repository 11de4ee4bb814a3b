// Package report turns a run's events and results into gridha's output
// formats, each one file behind the Reporter interface (the goss model):
//
//	text    live progress (one updating line per host on a terminal,
//	        timestamped lines otherwise), then results grouped by host
//	        (ok steps only with --verbose; diffs of drift always, diffs of
//	        changes with --diff), then an Ansible-style recap:
//	          rb1 : ok=12 changed=1 failed=0 unreachable=0 skipped=0
//	        with drift=N missing=N added in verify and --check runs
//	        (where --check shows drift/missing as "would change"/"would
//	        create").
//	json    one document: every result (secrets redacted), each host's
//	        recap counts and SSH use, totals, exit code.
//	junit   a <testsuite> per host, a <testcase> per step; drift and
//	        missing are <failure>s, failed steps and unreachable hosts
//	        <error>s, skipped steps <skipped/>.
//	nagios  one plugin line with perfdata and the plugin exit code.
//	prometheus  the text exposition format for node exporter's textfile
//	        collector: per host and role gauges of steps by status, run
//	        timestamp, duration and exit code.
//
// # Exit codes
//
// gridha (text, json, junit):
//
//	0    every step ok; in an install, changed steps are ok too
//	1    drift or missing state found (verify, install --check): the hosts
//	     differ from the inventory; nothing failed
//	2    a step failed or a host was unreachable (wins over 1)
//	3    bad input: inventory error, unknown role or --limit host, missing
//	     key file, bad flag; no host was dialled
//	130  interrupted (Ctrl-C, SIGTERM): the report says where each host stood
//
// --output nagios follows the plugin rules instead:
//
//	0 OK        every check ok
//	1 WARNING   drift or missing state (the setup differs from the
//	            inventory, but every host answered and every check ran)
//	2 CRITICAL  a check failed or a host was unreachable
//	3 UNKNOWN   the check could not run (bad input, interrupted)
//
// Drift is WARNING rather than CRITICAL because it is a configuration that
// no longer matches the inventory (a hand-edited file, a re-enabled
// service), not a service known to be down: the HA pair may well still be
// serving. A site that wants drift to page can map WARNING in Nagios.
//
// Counting: every status counts steps, except unreachable, which counts
// hosts (as in Ansible's recap); a host-level failure with no failed step
// (the per-host lock was refused) counts as failed=1.
//
// Secrets: every text written is passed through the run's Redactor, even
// though the engine redacts results already.
package report
