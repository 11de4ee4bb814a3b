#!/usr/bin/env bash
# Installs the Debian packages gridha's test bed needs, only when missing.
# The test bed runs real OpenSSH, MariaDB, BIND9, the Debian bdii package
# (slapd), sshfs and bindfs (the rb nodes' shared mount) inside network
# namespaces; none of them is started on the machine itself. ansible-core is
# only for make bench's same-run comparison with Ansible (BenchmarkAnsible).
set -euo pipefail
pkgs=(openssh-server openssh-client mariadb-server mariadb-client bind9 bind9-utils bind9-dnsutils
      bdii ldap-utils slapd sshfs bindfs fuse3 tcsh iproute2 iputils-arping psmisc procps rsync util-linux
      sudo make git ca-certificates
      openssl  # state-dir manifests hash with openssl dgst (the CPU's SHA instructions; sha256sum is the fallback)
      stress-ng keepalived  # the hagd fencing test loads the nodes' CPUs; the bench compares keepalived; the DNS removal bench loads the CPUs
      man-db rpm zsh  # packaging and completion tests: man, rpm -qlp, the zsh completion
      galera-4 galera-arbitrator-4 mariadb-backup socat glusterfs-server glusterfs-client  # the state pool (slide 5): Galera (garbd: the arbiter), GlusterFS
      ansible-core)  # make bench compares gridha with Ansible (BenchmarkAnsible)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages (${missing[*]}); run as root or install them" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting daemons on the machine itself: the test
# bed starts its own copies inside each host's namespaces.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; created_policy=1
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ $created_policy -eq 1 ] && rm -f "$policy"
echo "install-deps: done"
