#!/usr/bin/python3
"""Lab pinger: an ICMP echo request to one IPv4 address every INTERVAL_MS, until SIGTERM/SIGINT (run
inside the observer netns; no ping binary needed).

usage: pinger.py IPV4 INTERVAL_MS

The answers are not evaluated here: the observer records them like every other frame (observer.py,
info "ip4 <guest>><observer> p1 icmp4-0"). What the raw socket receives is drained and dropped.
"""
import os
import signal
import socket
import struct
import sys
import time


def checksum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    ip, interval = sys.argv[1], int(sys.argv[2]) / 1000.0
    running = [True]

    def stop(*_):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.setblocking(False)
    ident = os.getpid() & 0xFFFF
    seq = 0
    while running[0]:
        seq = (seq + 1) & 0xFFFF
        payload = b"ucping%010d" % seq
        csum = checksum(struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload)
        try:
            s.sendto(struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload, (ip, 0))
        except OSError:
            pass  # no neighbour yet (the guest is not up, or moving): try again next time
        try:
            while True:
                s.recv(2048)
        except (BlockingIOError, InterruptedError):
            pass
        time.sleep(interval)


if __name__ == "__main__":
    main()
