#!/bin/bash
# install/bench-startup.sh: start-up cost of the installed hook, as root, after install.sh or the .deb.
#
#   sudo ./install/bench-startup.sh [ROUNDS]        (default 21 rounds)
#
# In a throwaway netns with a bridge and a veth named like a tap (vnet0), each round runs, one after
# the other (interleaved, so load changes hit all alike), each under `ip netns exec ... env -i` as
# libvirt's environment:
#   empty     java with the launcher's JVM flags running an empty main (the floor of any JVM program)
#   plain     java with no flags running the same empty main
#   start     the installed hook launcher: 'start begin' for a 1-NIC domain (rules applied by nft)
#   stopped   the installed hook launcher: 'stopped end' (rules removed)
# and prints the median wall time, the median CPU time (user+sys, less sensitive to other load) and
# the peak RSS of each, and start/stopped relative to empty (target: <= 2.0x).
set -euo pipefail

ROUNDS=${1:-21}
LAUNCHER=${LAUNCHER:-/usr/lib/uncloud-hook/libvirt-hook}
JAVA=/usr/lib/uncloud-hook/java
NS=uci-bench-$$
TMP=$(mktemp -d /tmp/uci-bench.XXXXXX)
cleanup() { ip netns del "$NS" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "bench-startup.sh: run as root" >&2; exit 1; }
[ -x "$LAUNCHER" ] || { echo "bench-startup.sh: $LAUNCHER missing: install first" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-startup.sh: needs GNU time for the peak RSS: apt-get install time" >&2; exit 1; }

# the launcher's JVM flags (everything between the java path and -jar), for the empty main
FLAGS=$(sed -n '/^exec /,/-jar/p' "$LAUNCHER" | tr -d '\\\n' | sed 's/^exec [^ ]*//; s/-jar.*//; s/-XX:SharedArchiveFile=[^ ]*//' | tr -s ' ')

# Empty.class (public class Empty { public static void main(String[] a) {} }, javac --release 17)
base64 -d > "$TMP/Empty.class" <<'B64'
yv66vgAAAD0ADAoAAgADBwAEDAAFAAYBABBqYXZhL2xhbmcvT2JqZWN0AQAGPGluaXQ+AQADKClWBwAIAQAFRW1wdHkBAARDb2RlAQAEbWFpbgEAFihbTGphdmEvbGFuZy9TdHJpbmc7KVYAIQAHAAIAAAAAAAIAAQAFAAYAAQAJAAAAEQABAAEAAAAFKrcAAbEAAAAAAAkACgALAAEACQAAAA0AAAABAAAAAbEAAAAAAAA=
B64

ip netns add "$NS"
ip -n "$NS" link add br0 type bridge
ip -n "$NS" link add vnet0 type veth peer name vm0
ip -n "$NS" link set vnet0 master br0
ip -n "$NS" link set br0 up
ip -n "$NS" link set vnet0 up
printf 'state_dir = %s/state\nlog_file = %s/hook.log\n' "$TMP" "$TMP" > "$TMP/conf"
cat > "$TMP/domain.xml" <<'XML'
<domain type='kvm'>
  <name>bench1</name>
  <uuid>b0b0b0b0-0000-4000-8000-000000000001</uuid>
  <metadata>
    <uc:firewall xmlns:uc="https://ungleich.ch/uncloud/hook/1">
      <uc:interface mac="52:54:00:00:be:01">
        <uc:ip address="192.0.2.30"/><uc:ip address="2001:db8::30"/><uc:ip address="2001:db8:30::/64"/>
      </uc:interface>
    </uc:firewall>
  </metadata>
  <devices>
    <interface type='bridge'>
      <mac address='52:54:00:00:be:01'/><source bridge='br0'/><target dev='vnet0'/>
      <model type='virtio'/><alias name='net0'/>
    </interface>
  </devices>
</domain>
XML

ENV=(ip netns exec "$NS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C UNCLOUD_HOOK_CONFIG="$TMP/conf")
# shellcheck disable=SC2206
CMD_empty=("${ENV[@]}" "$JAVA" $FLAGS -cp "$TMP" Empty)
CMD_plain=("${ENV[@]}" "$JAVA" -cp "$TMP" Empty)
CMD_start=("${ENV[@]}" "$LAUNCHER" bench1 start begin -)
CMD_stopped=("${ENV[@]}" "$LAUNCHER" bench1 stopped end -)

# one NAME: appends "wall_ms cpu_ms rss_kb" to $TMP/NAME; fails on a non-zero exit
one() {
  local name=$1 arr="CMD_$1[@]" t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f '%U %S %M' -o "$TMP/time" "${!arr}" < "$TMP/domain.xml" > /dev/null 2> "$TMP/err" ||
    { echo "bench-startup.sh: $name failed:" >&2; cat "$TMP/err" "$TMP/time" >&2; exit 1; }
  t1=$(date +%s%N)
  read -r u s m < <(tail -n1 "$TMP/time")
  echo "$(( (t1 - t0) / 1000000 )) $(awk -v u="$u" -v s="$s" 'BEGIN{printf "%d", (u+s)*1000}') $m" >> "$TMP/$name"
}

# sanity: the hook really applies and removes the rules
one start
ip netns exec "$NS" nft list chain bridge uncloud port-vnet0 > /dev/null ||
  { echo "bench-startup.sh: start begin made no chain port-vnet0" >&2; exit 1; }
one stopped
if ip netns exec "$NS" nft list chain bridge uncloud port-vnet0 > /dev/null 2>&1; then
  echo "bench-startup.sh: stopped end left chain port-vnet0" >&2; exit 1
fi
rm -f "$TMP/start" "$TMP/stopped"
one empty; one plain; rm -f "$TMP/empty" "$TMP/plain"  # warm the page cache for all

for _ in $(seq "$ROUNDS"); do
  one empty; one start; one stopped; one plain
done

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
col() { cut -d' ' -f"$2" "$TMP/$1" | median; }
E=$(col empty 1)
echo "uncloud-hook start-up, $ROUNDS interleaved rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "JVM: $(readlink -f "$JAVA") ($("$JAVA" -version 2>&1 | sed -n 2p))"
echo "flags:$FLAGS"
printf '%-28s %9s %9s %9s %12s\n' "" "wall ms" "x empty" "CPU ms" "peak RSS kB"
for n in empty plain start stopped; do
  case $n in
    empty) label="empty main, launcher flags" ;;
    plain) label="empty main, no flags" ;;
    start) label="hook start begin (1 NIC)" ;;
    stopped) label="hook stopped end" ;;
  esac
  w=$(col $n 1)
  printf '%-28s %9s %9s %9s %12s\n' "$label" "$w" "$(awk -v a="$w" -v b="$E" 'BEGIN{printf "%.2f", a/b}')" \
    "$(col $n 2)" "$(cut -d' ' -f3 "$TMP/$n" | sort -n | tail -n1)"
done
