#!/bin/sh
# install/uninstall.sh: remove what install/install.sh installed, as root.
#
#   sudo ./install/uninstall.sh [--purge]
#
# Removes the hook launcher from /etc/libvirt/hooks (only ours), the units (the agent stopped first),
# /usr/sbin/uncloud-hook,
# /usr/lib/uncloud-hook, /var/lib/uncloud-hook, the state in /run and the nft table bridge uncloud
# (running VMs are no longer filtered after this). Keeps /etc/uncloud-hook unless --purge, which also
# removes the log file. The Debian packages install.sh apt-installed stay.
set -eu
PURGE=no
for a in "$@"; do
  case "$a" in
    --purge) PURGE=yes ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
say() { echo "uninstall.sh: $*"; }
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }
if dpkg-query -W -f='${Status}' uncloud-hook 2>/dev/null | grep -q "install ok installed"; then
  echo "uninstall.sh: the uncloud-hook Debian package is installed: use apt-get remove uncloud-hook" >&2
  exit 1
fi

if [ -x /usr/lib/uncloud-hook/setup ]; then
  /usr/lib/uncloud-hook/setup deconfigure
else
  # setup is gone (half-removed install): do its essential steps here
  for f in /etc/libvirt/hooks/qemu /etc/libvirt/hooks/qemu.d/uncloud-hook; do
    if [ -f "$f" ] && grep -q "uncloud-hook: managed hook launcher" "$f"; then rm -f "$f"; say "removed $f"; fi
  done
  if command -v nft >/dev/null 2>&1 && nft list table bridge uncloud >/dev/null 2>&1; then
    nft delete table bridge uncloud && say "deleted nft table bridge uncloud"
  fi
  if command -v systemctl >/dev/null 2>&1; then
    for u in uncloud-hook-agent.service uncloud-hook.service; do
      [ ! -d /run/systemd/system ] || systemctl stop "$u" 2>/dev/null || true
      systemctl -q disable "$u" 2>/dev/null || true
    done
  fi
  p=$(cat /run/libvirtd.pid 2>/dev/null || true)
  if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = libvirtd ]; then
    kill -HUP "$p" && say "sent SIGHUP to libvirtd (pid $p) so that it re-reads its hooks"
  fi
fi
for f in /usr/sbin/uncloud-hook /lib/systemd/system/uncloud-hook.service /lib/systemd/system/uncloud-hook-agent.service; do
  if [ -e "$f" ]; then rm -f "$f"; say "removed $f"; fi
done
for d in /usr/lib/uncloud-hook /usr/share/doc/uncloud-hook /var/lib/uncloud-hook; do
  if [ -e "$d" ]; then rm -rf "$d"; say "removed $d"; fi
done
if [ "$PURGE" = yes ]; then
  log=$(sed -n 's/^[[:space:]]*log_file[[:space:]]*=[[:space:]]*//p' /etc/uncloud-hook/uncloud-hook.conf 2>/dev/null | tail -n1)
  rm -rf /etc/uncloud-hook
  rm -f /var/log/uncloud-hook.log
  [ -z "$log" ] || [ ! -f "$log" ] || rm -f "$log"
  say "purged /etc/uncloud-hook and the log"
else
  [ ! -d /etc/uncloud-hook ] || say "kept /etc/uncloud-hook (--purge removes it)"
fi
say "done"
