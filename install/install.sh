#!/bin/sh
# install/install.sh: install uncloud-hook from this clone on Debian 12, as root.
#
#   sudo ./install/install.sh [--with-libvirt] [--no-doctor]
#
# 1. apt-get installs what is missing: a Java 17 JDK and maven (to build), nftables, iproute2; with
#    --with-libvirt also libvirt-daemon-system, libvirt-clients and qemu-system-x86 (a hypervisor
#    already has them).
# 2. builds the jar: mvn -B -q package -DskipTests
# 3. installs /usr/lib/uncloud-hook/{uncloud-hook.jar,libvirt-hook,setup}, /usr/sbin/uncloud-hook,
#    /lib/systemd/system/uncloud-hook{,-agent}.service and, unless there is one,
#    /etc/uncloud-hook/uncloud-hook.conf
# 4. /usr/lib/uncloud-hook/setup configure: the Java link, the CDS archive (training run), the hook in
#    /etc/libvirt/hooks/qemu (or qemu.d/uncloud-hook when another qemu hook is there), the units
#    (reconcile at boot; the agent, enabled and, where systemd runs, started), the nwfilter
#    templates, and a SIGHUP to libvirtd so that it notices the hook
# 5. uncloud-hook doctor (when libvirtd runs: it checks the hook against the running daemon)
#
# Idempotent: a second run changes no installed file. install/uninstall.sh undoes it.
set -eu

WITH_LIBVIRT=no
DOCTOR=yes
for a in "$@"; do
  case "$a" in
    --with-libvirt) WITH_LIBVIRT=yes ;;
    --no-doctor) DOCTOR=no ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $a (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install.sh: $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (sudo $0 $*)"
command -v apt-get >/dev/null 2>&1 || die "this installer is for Debian (apt-get); see the README for the layout"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$ROOT/pom.xml" ] && [ -d "$ROOT/install/files" ] || die "run it from a clone: $ROOT has no pom.xml"
if dpkg-query -W -f='${Status}' uncloud-hook 2>/dev/null | grep -q "install ok installed"; then
  die "the uncloud-hook Debian package is installed; remove it first (apt-get remove uncloud-hook)"
fi

# 1. packages
need="openjdk-17-jdk-headless maven nftables iproute2"
[ "$WITH_LIBVIRT" = yes ] && need="$need libvirt-daemon-system libvirt-clients qemu-system-x86"
missing=""
for p in $need; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  say "installing:$missing"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# 2. build (reproducible: the same sources give the same jar, byte for byte)
say "building the jar (mvn -B -q package -DskipTests)"
(cd "$ROOT" && mvn -B -q package -DskipTests)
JAR=$ROOT/hook/target/uncloud-hook.jar
[ -s "$JAR" ] || die "the build made no $JAR"

# 3. files; put copies only when the content differs, so that a second run changes nothing
put() {
  mkdir -p "$(dirname "$2")"
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    chmod "$3" "$2"
  else
    install -m "$3" "$1" "$2.install-new" && mv -f "$2.install-new" "$2"
    say "installed $2"
  fi
}
F=$ROOT/install/files
put "$JAR" /usr/lib/uncloud-hook/uncloud-hook.jar 644
put "$F/libvirt-hook" /usr/lib/uncloud-hook/libvirt-hook 755
put "$F/setup" /usr/lib/uncloud-hook/setup 755
put "$F/uncloud-hook" /usr/sbin/uncloud-hook 755
put "$F/uncloud-hook.service" /lib/systemd/system/uncloud-hook.service 644
put "$F/uncloud-hook-agent.service" /lib/systemd/system/uncloud-hook-agent.service 644
[ ! -f "$ROOT/README.md" ] || put "$ROOT/README.md" /usr/share/doc/uncloud-hook/README.md 644
for doc in "$ROOT"/docs/*.md; do
  [ ! -f "$doc" ] || put "$doc" "/usr/share/doc/uncloud-hook/docs/$(basename "$doc")" 644
done

# the configuration: never overwrite an edited one. The checksum of the default we installed tells
# an unedited file (replaced by a newer default) from an edited one (kept; the new default goes next
# to it as .dist), like dpkg's conffiles.
CONF=/etc/uncloud-hook/uncloud-hook.conf
SUM=/var/lib/uncloud-hook/conf.sha256
mkdir -p /etc/uncloud-hook /var/lib/uncloud-hook
new=$(sha256sum "$F/uncloud-hook.conf" | cut -d' ' -f1)
if [ ! -f "$CONF" ]; then
  put "$F/uncloud-hook.conf" "$CONF" 644
elif [ "$(sha256sum "$CONF" | cut -d' ' -f1)" = "$new" ]; then
  :
elif [ -f "$SUM" ] && [ "$(sha256sum "$CONF" | cut -d' ' -f1)" = "$(cat "$SUM")" ]; then
  put "$F/uncloud-hook.conf" "$CONF" 644
else
  say "keeping your edited $CONF; the current default is in $CONF.dist"
  put "$F/uncloud-hook.conf" "$CONF.dist" 644
fi
[ -f "$SUM" ] && [ "$(cat "$SUM")" = "$new" ] || echo "$new" > "$SUM"

# 4. host steps (shared with the Debian package)
/usr/lib/uncloud-hook/setup configure

# 5. doctor: exit 1 means warnings (e.g. no VM yet), 2 failures. It asks libvirtd, so it runs only
#    when libvirtd does (without systemd, apt does not start it).
if [ "$DOCTOR" = yes ]; then
  if ! /usr/sbin/uncloud-hook --help 2>/dev/null | grep -Eq '^ +doctor( |,|$)'; then
    say "NOTE: this build has no 'uncloud-hook doctor' command yet: skipped"
  elif ! /usr/lib/uncloud-hook/setup libvirtd >/dev/null; then
    say "NOTE: libvirtd is not running, so 'uncloud-hook doctor' was not run: start libvirtd, then run it"
  else
    say "uncloud-hook doctor:"
    rc=0
    /usr/sbin/uncloud-hook doctor || rc=$?
    [ "$rc" -le 1 ] || die "doctor found failures (exit $rc): the files are installed; fix what the FAIL lines say, then run uncloud-hook doctor again"
  fi
fi
say "done. Try: sudo uncloud-hook demo"
