#!/usr/bin/env python3
"""Issue 17 prototype, not the hook (docs/benchmarks.md, "A per-NIC ingress layout, measured").
Writes the inet ingress decision for N ports, IPv6 only (distinct addresses per port), hooked at output:
  old   main's layout: shared interval set allow-in6 (own . l4proto . dport . peer: pipapo)
  new   in6 gate set, then an interval verdict map own address -> goto a per-NIC chain (anonymous allow set)
  newb  no gate: the verdict map jumps to the per-NIC chain; shared always-allowed rules set the mark
env NOSET=1: newb's allows as one rule each; R50=1: port N//2 gets 50 allows (udp 53 the last).
usage: gen.py old|new|newb N OUT ; also writes OUT.del / OUT.add: port N//2's removal / re-add.
run1.sh LAYOUT N runs it (as root, scratch namespace pernic-*): load, flood, delete, add."""
import sys
lay, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
T = "inet scratch"
def own(i):  # 3 own ranges like the bench: address, routed /64, a second address
    return [f"2001:db8:1:{i:x}::10", f"2001:db8:2:{i:x}::/64", f"2001:db8:3:{i:x}::20"]
BOX = ["6 . 80-81 . ::/0", "17 . 53 . 2001:db8::/32", "58 . 0-65535 . ::/0"]
pre = [f"add table {T}",
       f"add set {T} in6 {{ type ipv6_addr; flags interval; }}",
       f"add chain {T} output {{ type filter hook output priority 0; policy accept; }}",
       f"add chain {T} ingress", f"add chain {T} ingress-decide", f"add chain {T} ingress-deny",
       f"add rule {T} output ip6 daddr @in6 jump ingress",
       f"add rule {T} ingress jump ingress-decide",
       f"add rule {T} ingress meta mark set meta mark | 0x00100000",
       f"add rule {T} ingress-decide ct state established,related return",
       f"add rule {T} ingress-decide udp sport 547 udp dport 546 return",
       f"add rule {T} ingress-decide icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-redirect, mld-listener-query }} return",
       f"add rule {T} ingress-deny counter drop"]
if lay == "newb":
    pre = [f"add table {T}",
       f"add chain {T} output {{ type filter hook output priority 0; policy accept; }}",
       f"add chain {T} ingress-common", f"add chain {T} ingress-deny",
       f"add rule {T} ingress-common ct state established,related meta mark set meta mark | 0x00100000",
       f"add rule {T} ingress-common udp sport 547 udp dport 546 meta mark set meta mark | 0x00100000",
       f"add rule {T} ingress-common icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, nd-redirect, mld-listener-query }} meta mark set meta mark | 0x00100000",
       f"add rule {T} ingress-deny counter drop"]
if lay == "old":
    pre.insert(2, f"add set {T} allow-in6 {{ type ipv6_addr . inet_proto . inet_service . ipv6_addr; flags interval; }}")
    pre.append(f"add rule {T} ingress-decide ip6 daddr . meta l4proto . th dport . ip6 saddr @allow-in6 return")
    pre.append(f"add rule {T} ingress-decide goto ingress-deny")
else:
    pass
import os
BIG = [f"6 . {1000 + k} . 2001:db8:{k:x}::/48" for k in range(49)] + ["17 . 53 . 2001:db8::/32"]
def rules(c):
    if os.environ.get("R50") and c == f"in-p{n // 2}":
        if os.environ.get("NOSET"):
            return [f"add rule {T} {c} jump ingress-common", f"add rule {T} {c} meta mark & 0x00100000 == 0x00100000 return"] + [
                f"add rule {T} {c} meta l4proto {b.split(' . ')[0]} th dport {b.split(' . ')[1]} ip6 saddr {b.split(' . ')[2]} meta mark set meta mark | 0x00100000 return"
                for b in BIG] + [f"add rule {T} {c} goto ingress-deny"]
        return [f"add rule {T} {c} jump ingress-common", f"add rule {T} {c} meta mark & 0x00100000 == 0x00100000 return",
            f"add rule {T} {c} meta l4proto . th dport . ip6 saddr {{ {', '.join(BIG)} }} meta mark set meta mark | 0x00100000 return",
            f"add rule {T} {c} goto ingress-deny"]
    if os.environ.get("NOSET"):
        return [f"add rule {T} {c} jump ingress-common", f"add rule {T} {c} meta mark & 0x00100000 == 0x00100000 return",
            f"add rule {T} {c} meta l4proto 6 th dport 80-81 meta mark set meta mark | 0x00100000 return",
            f"add rule {T} {c} meta l4proto 17 th dport 53 ip6 saddr 2001:db8::/32 meta mark set meta mark | 0x00100000 return",
            f"add rule {T} {c} meta l4proto 58 meta mark set meta mark | 0x00100000 return",
            f"add rule {T} {c} goto ingress-deny"]
    return [f"add rule {T} {c} jump ingress-common", f"add rule {T} {c} meta mark & 0x00100000 == 0x00100000 return",
            f"add rule {T} {c} meta l4proto . th dport . ip6 saddr {{ {', '.join(BOX)} }} meta mark set meta mark | 0x00100000 return",
            f"add rule {T} {c} goto ingress-deny"]
def nic(i):
    """(adds, removes) for port i"""
    o = own(i)
    if lay == "old":
        el = [f"{a} . {b}" for b in BOX for a in o]
        add = [f"add element {T} in6 {{ {', '.join(o)} }}", f"add element {T} allow-in6 {{ {', '.join(el)} }}"]
        rm = [f"delete element {T} in6 {{ {', '.join(o)} }}", f"delete element {T} allow-in6 {{ {', '.join(el)} }}"]
    elif lay == "newb":
        c = f"in-p{i}"
        add = [f"add chain {T} {c}", f"flush chain {T} {c}"] + rules(c) + [
               f"add element {T} in6v {{ {', '.join(a + ' : jump ' + c for a in o)} }}"]
        rm = [f"delete element {T} in6v {{ {', '.join(o)} }}", f"flush chain {T} {c}", f"delete chain {T} {c}"]
    else:
        c = f"in-p{i}"
        add = [f"add chain {T} {c}", f"flush chain {T} {c}",
               f"add rule {T} {c} meta l4proto . th dport . ip6 saddr {{ {', '.join(BOX)} }} return",
               f"add rule {T} {c} goto ingress-deny",
               f"add element {T} in6 {{ {', '.join(o)} }}",
               f"add element {T} in6v {{ {', '.join(a + ' : goto ' + c for a in o)} }}"]
        rm = [f"delete element {T} in6v {{ {', '.join(o)} }}", f"delete element {T} in6 {{ {', '.join(o)} }}",
              f"flush chain {T} {c}", f"delete chain {T} {c}"]
    return add, rm
lines = list(pre)
if lay == "old":  # grouped like InboundScript.add (chunks of 1000)
    ins, al = [], []
    for i in range(n):
        o = own(i); ins += o; al += [f"{a} . {b}" for b in BOX for a in o]
    for name, els in (("in6", ins), ("allow-in6", al)):
        for k in range(0, len(els), 1000):
            lines.append(f"add element {T} {name} {{ {', '.join(els[k:k+1000])} }}")
elif lay == "newb":
    vm = []
    for i in range(n):
        c = f"in-p{i}"
        lines += [f"add chain {T} {c}"] + rules(c)
        vm += [a + " : jump " + c for a in own(i)]
    lines += [f"add map {T} in6v {{ type ipv6_addr : verdict; flags interval; }}", f"add rule {T} output ip6 daddr vmap @in6v"]
    for k in range(0, len(vm), 1000):
        lines.append(f"add element {T} in6v {{ {', '.join(vm[k:k+1000])} }}")
else:
    ins, vm = [], []
    tail = [f"add map {T} in6v {{ type ipv6_addr : verdict; flags interval; }}",
            f"add rule {T} ingress-decide ip6 daddr vmap @in6v", f"add rule {T} ingress-decide goto ingress-deny"]
    for i in range(n):
        c = f"in-p{i}"
        lines += [f"add chain {T} {c}",
                  f"add rule {T} {c} meta l4proto . th dport . ip6 saddr {{ {', '.join(BOX)} }} return",
                  f"add rule {T} {c} goto ingress-deny"]
        o = own(i); ins += o; vm += [a + " : goto " + c for a in o]
    lines += tail
    for name, els in (("in6", ins), ("in6v", vm)):
        for k in range(0, len(els), 1000):
            lines.append(f"add element {T} {name} {{ {', '.join(els[k:k+1000])} }}")
open(out, "w").write("\n".join(lines) + "\n")
a, r = nic(n // 2)
open(out + ".del", "w").write("\n".join(r) + "\n")
open(out + ".add", "w").write("\n".join(a) + "\n")
