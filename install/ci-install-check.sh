#!/bin/bash
# install/ci-install-check.sh: checks install.sh, uninstall.sh and the Debian package on this machine,
# as root (CI calls it after the tests: bash install/ci-install-check.sh).
#
#  1. install.sh, then install.sh again: the checksums, modes and mtimes of every installed file must
#     not change (idempotent)
#  2. the installed hook launcher, exactly as libvirt runs it (env -i), in a throwaway netns with a
#     bridge and a veth named like a tap: 'start begin' makes the port chain, 'stopped end' removes it,
#     'migrate begin' prints nothing; the JVM maps the CDS archive
#  2b. a private libvirtd (own netns and mount ns) finds the hook after setup notify (SIGHUP), and
#     'uncloud-hook doctor' against it exits 0 or 1 (warnings: no VM), not 2
#  3. coexistence: with a foreign /etc/libvirt/hooks/qemu the hook goes to qemu.d/uncloud-hook and the
#     foreign one is untouched (only when the machine has no qemu hook of its own)
#  4. uninstall.sh, then nothing left (files, nft table, units) but the config; --purge removes that
#  5. the .deb built by Maven: apt-get install ./…deb, the same launcher and libvirtd/doctor checks, apt-get remove (nothing
#     left but the conffile), apt-get purge (nothing left)
#
# `mvn -B verify` runs it (the install module's integration-test phase), usually after the README's
# first line installed uncloud-hook with install.sh: that installation is taken away for the checks
# (config and log kept aside) and put back at the end with install.sh. It refuses when the .deb is
# installed, or when VMs run under the system libvirtd (uninstalling would remove their rules).
#
# Prints "N passed, N failed" last; exits non-zero on any failure. Leaves the machine as it found it.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=uci-ci-$$
TMP=$(mktemp -d /tmp/uci-ci.XXXXXX)
HOOKS=/etc/libvirt/hooks
MARK="uncloud-hook: managed hook launcher"
PASS=0
FAIL=0
FOREIGN_MADE=no

ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
# check WHAT CMD...: CMD's output goes to a log that is shown only when it fails
check() {
  local what=$1; shift
  if "$@" > "$TMP/check.out" 2>&1; then ok "$what"; else bad "$what"; tail -n 40 "$TMP/check.out" | sed 's/^/    /'; fi
}

LVPID=""
REINSTALL=no
# put back the installation found at the start (install.sh, then its config and log as they were)
reinstall() {
  [ "$REINSTALL" = yes ] || return 0
  REINSTALL=no
  "$ROOT/install/uninstall.sh" --purge >/dev/null 2>&1 || true
  if [ -d "$TMP/saved/etc" ]; then rm -rf /etc/uncloud-hook; cp -a "$TMP/saved/etc" /etc/uncloud-hook; fi
  if [ -f "$TMP/saved/log" ]; then cp -a "$TMP/saved/log" /var/log/uncloud-hook.log; fi
  [ -e "$TMP/saved/installed" ] || return 0
  "$ROOT/install/install.sh" --no-doctor
}
cleanup() {
  if [ -n "$LVPID" ] && kill -0 "$LVPID" 2>/dev/null; then kill -KILL "$LVPID"; wait "$LVPID" 2>/dev/null; fi
  ip netns del "$NS-lv" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  if [ "$FOREIGN_MADE" = yes ]; then rm -f "$HOOKS/qemu"; fi
  if dpkg-query -W -f='${Status}' uncloud-hook 2>/dev/null | grep -q "ok installed"; then
    apt-get purge -y -q uncloud-hook >/dev/null 2>&1 || true
  fi
  if [ "$REINSTALL" = yes ]; then reinstall > "$TMP/reinstall.out" 2>&1 || cat "$TMP/reinstall.out"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "ci-install-check.sh: run as root" >&2; exit 1; }

# every path an installation may create (files, links, dirs), for the snapshot and the leftover check
INSTALLED=(/usr/lib/uncloud-hook /usr/sbin/uncloud-hook /var/lib/uncloud-hook
  /lib/systemd/system/uncloud-hook.service /etc/systemd/system/multi-user.target.wants/uncloud-hook.service
  /lib/systemd/system/uncloud-hook-agent.service /etc/systemd/system/multi-user.target.wants/uncloud-hook-agent.service
  /usr/share/doc/uncloud-hook "$HOOKS/qemu.d/uncloud-hook" /run/uncloud-hook)

# snapshot: path, mode, size, mtime and checksum of every installed file; link targets
snapshot() {
  local p
  for p in "${INSTALLED[@]}" /etc/uncloud-hook "$HOOKS"; do
    [ -e "$p" ] || [ -L "$p" ] || continue
    find "$p" \( -type f -o -type l -o -type d \) -print0 | sort -z | while IFS= read -r -d '' f; do
      if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"
      elif [ -d "$f" ]; then echo "$f/ $(stat -c '%a' "$f")"
      else echo "$f $(stat -c '%a %s %Y' "$f") $(sha256sum < "$f" | cut -c1-32)"; fi
    done
  done
}

# nothing_left [keep-config]: no installed path, no hook of ours, no table, no enabled unit
nothing_left() {
  local p left=""
  for p in "${INSTALLED[@]}"; do
    if [ -e "$p" ] || [ -L "$p" ]; then left="$left $p"; fi
  done
  if [ -f "$HOOKS/qemu" ] && grep -q "$MARK" "$HOOKS/qemu"; then left="$left $HOOKS/qemu"; fi
  if nft list table bridge uncloud >/dev/null 2>&1; then left="$left nft:bridge-uncloud"; fi
  if ls -d /tmp/uncloud-hook-cds.* >/dev/null 2>&1; then left="$left /tmp/uncloud-hook-cds.*"; fi
  if [ "${1:-}" != keep-config ]; then
    [ ! -e /etc/uncloud-hook ] || left="$left /etc/uncloud-hook"
    [ ! -e /var/log/uncloud-hook.log ] || left="$left /var/log/uncloud-hook.log"
  fi
  if [ -n "$left" ]; then echo "  left behind:$left"; return 1; fi
}

# the installed hook, as libvirt runs it, in a throwaway netns
hook_smoke() {
  local launcher=$1 label=$2
  ip netns del "$NS" 2>/dev/null || true
  ip netns add "$NS"
  ip -n "$NS" link add br0 type bridge
  ip -n "$NS" link add vnet0 type veth peer name vm0
  ip -n "$NS" link set vnet0 master br0
  ip -n "$NS" link set br0 up
  ip -n "$NS" link set vnet0 up
  mkdir -p "$TMP/state"
  printf 'state_dir = %s/state\nlog_file = %s/hook.log\n' "$TMP" "$TMP" > "$TMP/conf"
  cat > "$TMP/domain.xml" <<'XML'
<domain type='kvm'><name>ci1</name><uuid>5b0c1b1e-0000-4000-8000-0000000000c1</uuid>
  <metadata><uc:firewall xmlns:uc="https://ungleich.ch/uncloud/hook/1">
    <uc:interface mac="52:54:00:00:c1:01"><uc:ip address="192.0.2.21"/><uc:ip address="2001:db8::21"/></uc:interface>
  </uc:firewall></metadata>
  <devices><interface type='bridge'><mac address='52:54:00:00:c1:01'/><source bridge='br0'/>
    <target dev='vnet0'/><alias name='net0'/></interface></devices></domain>
XML
  run() { ip netns exec "$NS" env -i PATH=/usr/bin:/bin LC_ALL=C UNCLOUD_HOOK_CONFIG="$TMP/conf" "$launcher" ci1 "$@" \
    < "$TMP/domain.xml" > "$TMP/out" 2> "$TMP/err"; }
  check "$label: start begin exits 0" run start begin -
  check "$label: start begin made chain port-vnet0" ip netns exec "$NS" nft list chain bridge uncloud port-vnet0
  check "$label: migrate begin exits 0 with empty stdout" eval 'run migrate begin - && [ ! -s "$TMP/out" ]'
  ip netns exec "$NS" nft delete table bridge uncloud
  check "$label: reconnect begin (spooled, batched) exits 0" run reconnect begin -
  check "$label: reconnect begin put port-vnet0 back" ip netns exec "$NS" nft list chain bridge uncloud port-vnet0
  check "$label: reconnect left nothing in the spool" eval '[ -z "$(ls /run/uncloud-hook/reconnect)" ]'
  check "$label: stopped end exits 0" run stopped end -
  check "$label: stopped end removed port-vnet0" eval '! ip netns exec "$NS" nft list chain bridge uncloud port-vnet0 >/dev/null 2>&1'
  check "$label: no JVM output on stderr" eval '[ ! -s "$TMP/err" ] || { cat "$TMP/err"; false; }'
  check "$label: the JVM maps the CDS archive" /usr/lib/uncloud-hook/java -Xshare:on \
    -XX:SharedArchiveFile=/var/lib/uncloud-hook/uncloud-hook.jsa -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -XX:-UsePerfData -Xmx64m -Xlog:disable -jar /usr/lib/uncloud-hook/uncloud-hook.jar --version
  ip netns del "$NS"
}

# agent_enabled LABEL: the agent unit is enabled, and where systemd runs, active (when this build
# has the agent command; setup enables it only then)
agent_enabled() {
  check "$1: the agent unit bounds its heap" grep -Eq '^Environment=UNCLOUD_HOOK_AGENT_HEAP=[0-9]+[mg]$' /lib/systemd/system/uncloud-hook-agent.service
  check "$1: the launcher gives 'agent' that heap" grep -q 'heap="-Xmx${UNCLOUD_HOOK_AGENT_HEAP' /usr/sbin/uncloud-hook
  if /usr/sbin/uncloud-hook --help 2>/dev/null | grep -Eq '^ +agent( |,|$)'; then
    check "$1 enabled the agent unit" systemctl -q is-enabled uncloud-hook-agent.service
    if [ -d /run/systemd/system ]; then
      check "$1 started the agent" systemctl -q is-active uncloud-hook-agent.service
      check "$1: the running agent's JVM has -Xmx" eval 'tr "\\0" " " < /proc/$(systemctl show -p MainPID --value uncloud-hook-agent.service)/cmdline | grep -q -- "-Xmx"'
    fi
  else
    echo "  NOTE: no 'uncloud-hook agent' command in this build: the agent unit is installed, not enabled"
  fi
}

echo "# precondition: no uncloud-hook installed (one by install.sh is put back at the end)"
if ! nothing_left; then
  if dpkg-query -W -f='${Status}' uncloud-hook 2>/dev/null | grep -q "ok installed"; then
    echo "ci-install-check.sh: the uncloud-hook Debian package is installed here; remove it first (apt-get purge uncloud-hook)" >&2
    exit 1
  fi
  vms=$(timeout 20 virsh -c qemu:///system list --name 2>/dev/null | grep -c . || true)
  if [ "${vms:-0}" -gt 0 ]; then
    echo "ci-install-check.sh: uncloud-hook is installed and $vms VMs run here; the checks uninstall it (and" \
      "their rules): run them on a machine without VMs, or skip them (mvn -B verify -Dexec.skip)" >&2
    exit 1
  fi
  mkdir -p "$TMP/saved"
  if [ -d /etc/uncloud-hook ]; then cp -a /etc/uncloud-hook "$TMP/saved/etc"; fi
  if [ -f /var/log/uncloud-hook.log ]; then cp -a /var/log/uncloud-hook.log "$TMP/saved/log"; fi
  if [ -e /usr/lib/uncloud-hook/uncloud-hook.jar ]; then : > "$TMP/saved/installed"; fi
  REINSTALL=yes
  echo "  taking it away for the checks: uninstall.sh --purge (config and log kept aside)"
  "$ROOT/install/uninstall.sh" --purge > "$TMP/uninstall.out" 2>&1 || { cat "$TMP/uninstall.out"; exit 1; }
  nothing_left || exit 1
fi

echo "# 1. install.sh, twice"
check "install.sh exits 0" "$ROOT/install/install.sh"
snapshot > "$TMP/first"
check "install.sh installed the hook launcher" eval 'grep -q "$MARK" "$HOOKS/qemu" 2>/dev/null || grep -q "$MARK" "$HOOKS/qemu.d/uncloud-hook"'
check "install.sh made the CDS archive" test -s /var/lib/uncloud-hook/uncloud-hook.jsa
check "install.sh enabled the unit" systemctl -q is-enabled uncloud-hook.service
check "install.sh installed the agent unit" test -f /lib/systemd/system/uncloud-hook-agent.service
agent_enabled "install.sh"
check "install.sh again exits 0" "$ROOT/install/install.sh"
snapshot > "$TMP/second"
check "second install.sh changed no file ($(wc -l < "$TMP/first") paths compared)" diff "$TMP/first" "$TMP/second"

echo "# 2. the installed hook launcher"
HOOK=$HOOKS/qemu
grep -q "$MARK" "$HOOK" 2>/dev/null || HOOK=$HOOKS/qemu.d/uncloud-hook
hook_smoke "$HOOK" "install.sh"

# private_libvirtd LABEL: a private libvirtd (own netns and mount ns with its own /etc/libvirt, /run,
# /var/lib/libvirt, ...; started without a hook) notices the installed hook after 'setup hook' and
# 'setup notify' (SIGHUP), and 'uncloud-hook doctor' run against it exits 0 or 1 (warnings), not 2.
private_libvirtd() {
  local label=$1 W=$TMP/lv-$1 i rc
  mkdir -p "$W/etc/hooks" "$W/run" "$W/lib" "$W/cache" "$W/log"
  printf '%s\n' 'unix_sock_group = "root"' 'auth_unix_ro = "none"' 'auth_unix_rw = "none"' \
    'log_filters = "1:util.hook 3:object 3:util 3:rpc 3:event"' \
    'log_outputs = "1:file:/var/log/libvirt/libvirtd.log"' > "$W/etc/libvirtd.conf"
  printf '%s\n' 'security_driver = "none"' 'cgroup_controllers = [ ]' 'namespaces = [ ]' 'stdio_handler = "file"' \
    > "$W/etc/qemu.conf"
  ip netns add "$NS-lv"
  ip netns exec "$NS-lv" unshare --mount --propagation private sh -c "
    mount -n --bind $W/etc /etc/libvirt && mount -n --bind $W/run /run && mkdir -p /run/libvirt &&
    mount -n --bind $W/lib /var/lib/libvirt && mount -n --bind $W/cache /var/cache/libvirt &&
    mount -n --bind $W/log /var/log/libvirt && cd / && exec /usr/sbin/libvirtd" > "$W/stdout" 2>&1 &
  LVPID=$!
  for i in $(seq 1 150); do [ -S "$W/run/libvirt/libvirt-sock" ] && break; sleep 0.2; done
  check "$label: private libvirtd started without a qemu hook" grep -q "No hook script /etc/libvirt/hooks/qemu" "$W/log/libvirtd.log"
  check "$label: setup hook places it in that libvirtd's /etc/libvirt" nsenter -t "$LVPID" -m -n /usr/lib/uncloud-hook/setup hook
  check "$label: setup notify signals that libvirtd" eval 'nsenter -t "$LVPID" -m -n /usr/lib/uncloud-hook/setup notify | grep -q "sent SIGHUP to libvirtd"'
  for i in $(seq 1 50); do grep -q "Found hook script /etc/libvirt/hooks/qemu" "$W/log/libvirtd.log" && break; sleep 0.2; done
  check "$label: libvirtd found the hook after SIGHUP" grep -q "Found hook script /etc/libvirt/hooks/qemu" "$W/log/libvirtd.log"
  if /usr/sbin/uncloud-hook --help 2>/dev/null | grep -Eq '^ +doctor( |,|$)'; then
    rc=0
    nsenter -t "$LVPID" -m -n /usr/sbin/uncloud-hook doctor > "$W/doctor" 2>&1 || rc=$?
    check "$label: doctor exits 0 or 1 (warnings on a host without VMs), not 2 (was $rc)" \
      eval '[ "$rc" -le 1 ] || { cat "$W/doctor"; false; }'
  else
    echo "  NOTE: no 'uncloud-hook doctor' command in this build: not run"
  fi
  kill -TERM "$LVPID" 2>/dev/null
  for i in $(seq 1 50); do kill -0 "$LVPID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$LVPID" 2>/dev/null || true
  wait "$LVPID" 2>/dev/null || true
  LVPID=""
  ip netns del "$NS-lv"
}

echo "# 2b. a running libvirtd notices the hook; doctor"
if [ -x /usr/sbin/libvirtd ]; then
  private_libvirtd install.sh
else
  echo "  no /usr/sbin/libvirtd on this machine: skipped"
fi

echo "# 3. coexistence with a foreign qemu hook"
if [ -e "$HOOKS/qemu" ] && ! grep -q "$MARK" "$HOOKS/qemu"; then
  echo "  this machine has its own $HOOKS/qemu: checked by step 1 already"
  check "hook is in qemu.d" grep -q "$MARK" "$HOOKS/qemu.d/uncloud-hook"
else
  rm -f "$HOOKS/qemu"
  printf '#!/bin/sh\n# a foreign hook\ncat\n' > "$HOOKS/qemu"
  chmod 755 "$HOOKS/qemu"
  FOREIGN_MADE=yes
  sum=$(sha256sum < "$HOOKS/qemu")
  check "setup hook exits 0" /usr/lib/uncloud-hook/setup hook
  check "foreign qemu hook untouched" eval '[ "$(sha256sum < "$HOOKS/qemu")" = "$sum" ]'
  check "our hook went to qemu.d/uncloud-hook" grep -q "$MARK" "$HOOKS/qemu.d/uncloud-hook"
  snapshot > "$TMP/co1"
  /usr/lib/uncloud-hook/setup hook >/dev/null
  snapshot > "$TMP/co2"
  check "setup hook again changed nothing" diff "$TMP/co1" "$TMP/co2"
  hook_smoke "$HOOKS/qemu.d/uncloud-hook" "qemu.d"
fi

echo "# 4. uninstall.sh"
check "uninstall.sh exits 0" "$ROOT/install/uninstall.sh"
if [ "$FOREIGN_MADE" = yes ]; then
  check "foreign qemu hook kept by uninstall" eval '[ "$(sha256sum < "$HOOKS/qemu")" = "$sum" ]'
  check "qemu.d made by us is gone" test ! -e "$HOOKS/qemu.d"
  rm -f "$HOOKS/qemu"
  FOREIGN_MADE=no
fi
check "nothing left but the config" nothing_left keep-config
check "config kept" test -f /etc/uncloud-hook/uncloud-hook.conf
check "unit not enabled" eval '! systemctl -q is-enabled uncloud-hook.service 2>/dev/null'
check "agent unit not enabled" eval '! systemctl -q is-enabled uncloud-hook-agent.service 2>/dev/null'
check "uninstall.sh --purge exits 0" "$ROOT/install/uninstall.sh" --purge
check "nothing left after --purge" nothing_left

echo "# 5. the Debian package"
check "mvn builds the .deb" eval '(cd "$ROOT" && mvn -B -q package -DskipTests -pl install -am)'
DEB=$(ls "$ROOT"/install/target/uncloud-hook_*_all.deb 2>/dev/null | head -n1)
apt_install() {
  # a stale package list may lack a dependency: update once and retry
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1"; }
}
check "apt-get install ./$(basename "${DEB:-none}")" apt_install "$DEB"
check "package installed" eval 'dpkg-query -W -f="\${Status}" uncloud-hook | grep -q "ok installed"'
check "postinst placed the hook" eval 'grep -q "$MARK" "$HOOKS/qemu" 2>/dev/null || grep -q "$MARK" "$HOOKS/qemu.d/uncloud-hook"'
check "postinst made the CDS archive" test -s /var/lib/uncloud-hook/uncloud-hook.jsa
check "postinst enabled the unit" systemctl -q is-enabled uncloud-hook.service
check "the package has the agent unit" test -f /lib/systemd/system/uncloud-hook-agent.service
agent_enabled "postinst"
if [ -x /usr/sbin/libvirtd ]; then private_libvirtd deb; fi
HOOK=$HOOKS/qemu
grep -q "$MARK" "$HOOK" 2>/dev/null || HOOK=$HOOKS/qemu.d/uncloud-hook
hook_smoke "$HOOK" "deb"
check "apt-get remove" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q uncloud-hook
check "nothing left after remove but the conffile" nothing_left keep-config
check "apt-get purge" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q uncloud-hook
check "nothing left after purge" nothing_left

if [ "$REINSTALL" = yes ]; then
  echo "# 6. the installation found at the start, back"
  check "install.sh reinstalled it, config and log as they were" reinstall
  check "the hook launcher is in place again" eval 'grep -q "$MARK" "$HOOKS/qemu" 2>/dev/null || grep -q "$MARK" "$HOOKS/qemu.d/uncloud-hook"'
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
