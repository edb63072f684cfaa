#!/usr/bin/python3
"""Real connections for InboundLabTest (issue 17), plain sockets only (no scapy).

  listen ADDR4 ADDR6 TCPPORTS UDPPORTS   TCP: accept, send "hello", close; UDP: echo back. Prints READY.
  tcp SRC DST PORT                       connect from SRC (bind); prints OK or FAIL <why>
  udp SRC SPORT DST PORT                 one datagram, wait for the echo; OK or FAIL
  ping SRC DST                           one ICMP/ICMPv6 echo request (raw socket); OK or FAIL
  capture IFACE NONCE SECONDS            raw AF_PACKET: prints READY, then SEEN for frames carrying NONCE
  frame IFACE DSTMAC SRCMAC SRCIP DSTIP DPORT NONCE   one Ethernet/IPv4/UDP frame with NONCE as payload
"""
import selectors
import socket
import struct
import sys
import time

TIMEOUT = 1.5


def fam(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET


def listen(a4, a6, tcp, udp):
    sel = selectors.DefaultSelector()
    for a in (a4, a6):
        for p in [int(x) for x in tcp.split(",") if x]:
            s = socket.socket(fam(a), socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam(a) == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((a, p))
            s.listen(16)
            sel.register(s, selectors.EVENT_READ, "tcp")
        for p in [int(x) for x in udp.split(",") if x]:
            s = socket.socket(fam(a), socket.SOCK_DGRAM)
            if fam(a) == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, p))
            sel.register(s, selectors.EVENT_READ, "udp")
    print("READY", flush=True)
    while True:
        for k, _ in sel.select():
            s = k.fileobj
            if k.data == "tcp":
                c, _ = s.accept()
                try:
                    c.sendall(b"hello\n")
                finally:
                    c.close()
            else:
                data, peer = s.recvfrom(2048)
                s.sendto(data, peer)


def tcp(src, dst, port):
    s = socket.socket(fam(dst), socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.bind((src, 0))
    s.connect((dst, int(port)))
    got = s.recv(16)
    if not got.startswith(b"hello"):
        raise RuntimeError("got %r" % got)


def udp(src, sport, dst, port):
    s = socket.socket(fam(dst), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(TIMEOUT)
    s.bind((src, int(sport)))
    s.sendto(b"uc-udp", (dst, int(port)))
    data, _ = s.recvfrom(64)
    if data != b"uc-udp":
        raise RuntimeError("got %r" % data)


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ping(src, dst):
    v6 = ":" in dst
    s = socket.socket(fam(dst), socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    s.settimeout(TIMEOUT)
    s.bind((src, 0))
    ident = 0x1717
    payload = b"uc-ping-%d" % time.time_ns()
    hdr = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, 1)
    pkt = hdr + payload
    if not v6:
        pkt = struct.pack("!BBHHH", 8, 0, checksum(pkt), ident, 1) + payload
    s.sendto(pkt, (dst, 0))  # the kernel computes the ICMPv6 checksum
    end = time.time() + TIMEOUT
    while time.time() < end:
        data = s.recv(2048)
        body = data if v6 else data[(data[0] & 0xF) * 4:]
        if body[0] == (129 if v6 else 0) and payload in body:
            return
    raise TimeoutError()


def capture(iface, nonce, seconds):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((iface, 0))
    s.settimeout(0.1)
    print("READY", flush=True)
    end = time.time() + float(seconds)
    want = nonce.encode()
    while time.time() < end:
        try:
            data = s.recv(65535)
        except socket.timeout:
            continue
        if want in data:
            print("SEEN", flush=True)
            return


def mac(m):
    return bytes(int(x, 16) for x in m.split(":"))


def frame(iface, dstmac, srcmac, srcip, dstip, dport, nonce):
    payload = nonce.encode()
    udph = struct.pack("!HHHH", 40000, int(dport), 8 + len(payload), 0)
    total = 20 + len(udph) + len(payload)
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0x1717, 0, 64, 17, 0,
                      socket.inet_aton(srcip), socket.inet_aton(dstip))
    iph = iph[:10] + struct.pack("!H", checksum(iph)) + iph[12:]
    eth = mac(dstmac) + mac(srcmac) + b"\x08\x00"
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.send(eth + iph + udph + payload)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "listen":
        listen(*args)
        return
    if cmd == "capture":
        capture(*args)
        return
    if cmd == "frame":
        frame(*args)
        return
    try:
        {"tcp": tcp, "udp": udp, "ping": ping}[cmd](*args)
        print("OK")
    except Exception as e:  # a refusal, a timeout: the verdict, not an error of the tool
        print("FAIL " + type(e).__name__)


if __name__ == "__main__":
    main()
