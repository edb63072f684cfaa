#!/usr/bin/python3
"""Connection prober for the inbound-rule lab tests (run inside a client netns).

usage: tcpprobe.py OUTFILE INTERVAL_MS TIMEOUT_MS TARGET...    TARGET: IPv4:PORT or [IPv6]:PORT

Every INTERVAL_MS it starts one TCP connection attempt to each target, non-blocking: attempts
overlap, so a port that opens is seen within one interval even while earlier attempts still wait.
One line per finished attempt, flushed at once:
    <start of the attempt, ns since epoch> <target> OK|REFUSED|NONE
OK: the handshake completed (the SYN was delivered and a listener answered). REFUSED: a RST came
back (the SYN was delivered, nothing listened). NONE: no answer within TIMEOUT_MS (dropped on the
way) or unreachable. Writes "READY" to stdout first; stops on SIGTERM.
"""
import errno
import select
import signal
import socket
import sys
import time


def parse(t):
    if t.startswith("["):
        a, p = t[1:].split("]:")
        return socket.AF_INET6, (a, int(p))
    a, p = t.rsplit(":", 1)
    return socket.AF_INET, (a, int(p))


def verdict(err):
    return "OK" if err == 0 else "REFUSED" if err == errno.ECONNREFUSED else "NONE"


def main():
    out = open(sys.argv[1], "a", buffering=1)
    interval = int(sys.argv[2]) / 1e3
    timeout = int(sys.argv[3]) / 1e3
    targets = [(t,) + parse(t) for t in sys.argv[4:]]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    pending = {}  # fd -> (socket, target, start ns, deadline)
    poll = select.poll()
    print("READY", flush=True)
    nxt = time.monotonic()
    while not stop:
        now = time.monotonic()
        if now >= nxt:
            for name, fam, addr in targets:
                s = socket.socket(fam, socket.SOCK_STREAM)
                s.setblocking(False)
                start = time.time_ns()
                err = s.connect_ex(addr)
                if err != errno.EINPROGRESS:
                    out.write("%d %s %s\n" % (start, name, verdict(err)))
                    s.close()
                    continue
                pending[s.fileno()] = (s, name, start, now + timeout)
                poll.register(s.fileno(), select.POLLOUT)
            nxt = max(nxt + interval, now)
        wait = min([nxt] + [p[3] for p in pending.values()]) - time.monotonic()
        for fd, _ in poll.poll(max(0, wait) * 1e3):
            s, name, start, _ = pending.pop(fd)
            poll.unregister(fd)
            out.write("%d %s %s\n" % (start, name, verdict(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))))
            s.close()
        now = time.monotonic()
        for fd in [fd for fd, p in pending.items() if p[3] <= now]:
            s, name, start, _ = pending.pop(fd)
            poll.unregister(fd)
            out.write("%d %s NONE\n" % (start, name))
            s.close()


if __name__ == "__main__":
    main()
