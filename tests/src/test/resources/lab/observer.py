#!/usr/bin/python3
"""Lab observer: records every frame that reaches one interface (run inside the observer netns).

usage: observer.py IFNAME OUTFILE [UDP_PORT]

One line per received frame (outgoing frames of the observer itself are skipped), flushed at once:
    <receive time, ns since epoch, kernel timestamp> <kind> <seq> <src mac> <ethertype hex> <len> <info>
kind/seq come from a probe payload "UCP1 <kind> <seq> " anywhere in the frame (see ucprobe.c);
frames without one have kind "-" and seq -1. info is a short protocol summary (addresses).
It also binds UDP sockets on the probe port (v4 and v6) and drains them, so the observer's kernel
never answers probes with ICMP port-unreachable (noise on the segment).
Writes "READY" as its first line once the capture socket is bound. Stops on SIGTERM/SIGINT.
"""
import re
import select
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
PROBE = re.compile(rb"UCP1 ([a-z0-9]+) ([0-9]+) ")


def mac(b):
    return ":".join("%02x" % x for x in b)


def info(frame, etype, off):
    try:
        if etype == 0x0800:
            p = frame[off + 9]
            extra = ""
            if p == 1:
                extra = " icmp4-%d" % frame[off + (frame[off] & 0x0F) * 4]
            return "ip4 %s>%s p%d%s" % (socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16]),
                                         socket.inet_ntop(socket.AF_INET, frame[off + 16:off + 20]), p, extra)
        if etype == 0x86DD:
            nh = frame[off + 6]
            extra = ""
            if nh == 58:
                extra = " icmp6-%d" % frame[off + 40]
            return "ip6 %s>%s p%d%s" % (socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24]),
                                         socket.inet_ntop(socket.AF_INET6, frame[off + 24:off + 40]), nh, extra)
        if etype == 0x8035:  # RARP (qemu's announce-self): op, sender MAC/IP > target MAC/IP
            op = struct.unpack("!H", frame[off + 6:off + 8])[0]
            return "rarp op%d %s/%s>%s/%s" % (op, mac(frame[off + 8:off + 14]),
                                              socket.inet_ntop(socket.AF_INET, frame[off + 14:off + 18]),
                                              mac(frame[off + 18:off + 24]),
                                              socket.inet_ntop(socket.AF_INET, frame[off + 24:off + 28]))
        if etype == 0x0806:
            op = struct.unpack("!H", frame[off + 6:off + 8])[0]
            return "arp op%d %s/%s>%s" % (op, mac(frame[off + 8:off + 14]),
                                          socket.inet_ntop(socket.AF_INET, frame[off + 14:off + 18]),
                                          socket.inet_ntop(socket.AF_INET, frame[off + 24:off + 28]))
    except (IndexError, ValueError, OSError):
        pass
    return "-"


def main():
    ifname, outfile = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 9999
    running = [True]

    def stop(*_):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    cap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    cap.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    cap.bind((ifname, 0))
    sinks = []
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.setblocking(False)
        sinks.append(s)

    out = open(outfile, "w", buffering=1)
    out.write("READY\n")
    cmsg_space = socket.CMSG_SPACE(16)
    while running[0]:
        try:
            ready, _, _ = select.select([cap] + sinks, [], [], 0.2)
        except InterruptedError:
            continue
        for s in ready:
            if s is not cap:
                try:
                    while True:
                        s.recv(2048)
                except (BlockingIOError, InterruptedError):
                    pass
                continue
            frame, anc, _, addr = cap.recvmsg(65535, cmsg_space)
            if addr[2] == PACKET_OUTGOING:
                continue
            ts = 0
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", data[:16])
                    ts = sec * 1000000000 + nsec
            etype = struct.unpack("!H", frame[12:14])[0]
            off = 14
            while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:  # show the inner type of tagged frames
                etype = struct.unpack("!H", frame[off + 2:off + 4])[0]
                off += 4
            m = PROBE.search(frame)
            kind, seq = (m.group(1).decode(), m.group(2).decode()) if m else ("-", "-1")
            out.write("%d %s %s %s %04x %d %s\n" % (ts, kind, seq, mac(frame[6:12]), etype, len(frame),
                                                    info(frame, etype, off).replace(" ", "_")))
    out.close()


if __name__ == "__main__":
    main()
