#!/bin/busybox sh
# /init of the lab guest (packed into the initramfs by GuestImage). Configures eth0 from the kernel
# command line and starts the probe sender /bin/ucprobe (see ucprobe.c), which reads the same line:
#   uc.ip4=198.51.100.100/24 uc.ip6=2001:db8:0:1::100/64 uc.net6=2001:db8:1234::1 (routed prefix,
#   put on lo) uc.obs4=... uc.obs6=... [uc.dad=0: no IPv6 duplicate address detection]
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/mod/order); do insmod /lib/mod/$m.ko; done
arg() { for x in $(cat /proc/cmdline); do case "$x" in "uc.$1="*) echo "${x#uc.$1=}"; return;; esac; done; }
IP4=$(arg ip4); IP6=$(arg ip6); NET6=$(arg net6)
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
ip link set lo up
[ "$(arg dad)" = 0 ] && echo 0 > /proc/sys/net/ipv6/conf/eth0/accept_dad
ip link set eth0 up
[ -n "$IP4" ] && ip addr add "$IP4" dev eth0
[ -n "$IP6" ] && ip -6 addr add "$IP6" dev eth0
[ -n "$NET6" ] && ip -6 addr add "$NET6/128" dev lo
/bin/ucprobe > /dev/ttyS0 2>&1 &
# TCP listeners for the inbound-rule tests with etcd (AgentEtcdTest): busybox httpd on 7001-7003,
# IPv4 and IPv6, before the UP line; a completed handshake proves the SYN was delivered
mkdir -p /tmp/www
for p in 7001 7002 7003; do httpd -p "$p" -h /tmp/www; done
# a NIC hot-plugged later (AgentNftTest): eth1 from the uc1.* parameters (uc1.ip4=... uc1.kinds=...),
# probing the same observer from its own address
if grep -q ' uc1\.ip4=' /proc/cmdline; then
  (
    while [ ! -e /sys/class/net/eth1 ]; do sleep 0.1; done
    for x in $(cat /proc/cmdline); do
      case "$x" in uc1.*) echo "uc.${x#uc1.}";; uc.obs4=*|uc.obsmac=*|uc.interval=*) echo "$x";; esac
    done > /tmp/eth1.params
    echo uc.if=eth1 >> /tmp/eth1.params
    echo 1 > /proc/sys/net/ipv4/conf/all/arp_ignore
    ip link set eth1 up
    ip addr add "$(grep '^uc.ip4=' /tmp/eth1.params | cut -d= -f2)" dev eth1
    echo "UCGUEST ETH1 mac=$(cat /sys/class/net/eth1/address)" > /dev/ttyS0
    exec /bin/ucprobe /tmp/eth1.params > /dev/ttyS0 2>&1
  ) &
fi
echo "UCGUEST UP mac=$(cat /sys/class/net/eth0/address) ip4=$IP4 ip6=$IP6 net6=$NET6 uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/ttyS0
while true; do sleep 3600; done
