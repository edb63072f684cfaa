#!/usr/bin/python3
"""TCP peer of the lab guest (issue 17, live migration with inbound rules), plain sockets only.

usage: tcppeer.py LISTEN_ADDR LISTEN_PORT GUEST_ADDR PORT:INTERVAL_MS[,PORT:INTERVAL_MS...] LOG

Two jobs, in one selector loop, until SIGTERM:
  - the far end of the guest's long-lived connection (ucprobe's uc.tcppeer): accepts on
    LISTEN_ADDR:LISTEN_PORT, answers each "UCT1 <seq> <echoed>" line with "UCE1 <seq>";
  - a client of the guest's services (ucprobe's uc.tcp): a new connection to GUEST_ADDR:PORT every
    INTERVAL_MS (non-blocking, several in flight), each ok once the guest's "UCT <port>" greeting and
    EOF arrived, failed after 0.8 s (less than the first SYN retransmission, so a connect attempt
    always measures the moment it was made) or at once when refused.
Each event is one line of LOG, epoch ns first (comparable with the observer's frames):
  <ns> A <conn> <addr>:<port>           connection accepted
  <ns> L <conn> <seq> <echoed>          line received on it
  <ns> X <conn> <why>                   connection closed
  <ns> S <port> ok|timeout|refused|error <start-ns>   one service attempt, started at start-ns
Commands on stdin, one a line: "reconnect" sends "UCR1" on the newest connection (the guest closes
it and connects again).
"""
import errno
import selectors
import signal
import socket
import sys
import time

TIMEOUT_NS = 800_000_000


def main():
    laddr, lport, guest, services, logpath = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    plan = [(int(p), int(i) * 1_000_000) for p, i in (x.split(":") for x in services.split(",") if x)]
    log = open(logpath, "a", buffering=1)
    running = [True]

    def stop(*_):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sel = selectors.DefaultSelector()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((laddr, lport))
    srv.listen(8)
    srv.setblocking(False)
    sel.register(srv, selectors.EVENT_READ, ("srv",))
    sel.register(sys.stdin, selectors.EVENT_READ, ("cmd",))
    conns = {}  # socket -> [n, rx buffer]
    nconn = [0]
    attempts = {}  # socket -> [port, start ns, greeting]
    nxt = {p: time.time_ns() for p, _ in plan}
    log.write("READY\n")

    def done(s, what):
        port, start, _ = attempts.pop(s)
        sel.unregister(s)
        s.close()
        log.write("%d S %d %s %d\n" % (time.time_ns(), port, what, start))

    while running[0]:
        now = time.time_ns()
        for port, every in plan:
            if now >= nxt[port]:
                nxt[port] = max(nxt[port] + every, now)
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                c.setblocking(False)
                err = c.connect_ex((guest, port))
                attempts[c] = [port, now, b""]
                sel.register(c, selectors.EVENT_READ, ("try",))
                if err not in (0, errno.EINPROGRESS):
                    done(c, "error")
        for c in [c for c, a in attempts.items() if now - a[1] > TIMEOUT_NS]:
            done(c, "timeout")
        wake = min(nxt.values(), default=now + 100_000_000)
        for ev, _ in sel.select(max(0, min(wake - time.time_ns(), 50_000_000)) / 1e9):
            s, kind = ev.fileobj, ev.data[0]
            if kind == "srv":
                c, addr = srv.accept()
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nconn[0] += 1
                conns[c] = [nconn[0], b""]
                sel.register(c, selectors.EVENT_READ, ("conn",))
                log.write("%d A %d %s:%d\n" % (time.time_ns(), nconn[0], addr[0], addr[1]))
            elif kind == "cmd":
                line = sys.stdin.readline()
                if not line:
                    sel.unregister(sys.stdin)
                elif line.strip() == "reconnect" and conns:
                    newest = max(conns, key=lambda k: conns[k][0])
                    newest.send(b"UCR1\n")
            elif kind == "conn":
                n, buf = conns[s]
                try:
                    data = s.recv(4096)
                except OSError as e:
                    data, why = b"", e.strerror
                else:
                    why = "EOF"
                if not data:
                    sel.unregister(s)
                    s.close()
                    del conns[s]
                    log.write("%d X %d %s\n" % (time.time_ns(), n, why))
                    continue
                buf += data
                *lines, buf = buf.split(b"\n")
                conns[s][1] = buf
                t = time.time_ns()
                for l in lines:
                    f = l.split()
                    if len(f) == 3 and f[0] == b"UCT1":
                        log.write("%d L %d %s %s\n" % (t, n, f[1].decode(), f[2].decode()))
                        try:
                            s.send(b"UCE1 " + f[1] + b"\n")
                        except BlockingIOError:
                            pass  # the guest is away: it sends again, the next line is answered
            else:  # a service attempt: connected, greeting, EOF, or refused
                a = attempts[s]
                try:
                    data = s.recv(64)
                except ConnectionRefusedError:
                    done(s, "refused")
                    continue
                except OSError:
                    done(s, "error")
                    continue
                if data:
                    a[2] += data
                else:
                    done(s, "ok" if a[2] == b"UCT %d\n" % a[0] else "error")
    log.write("%d STOP\n" % time.time_ns())


if __name__ == "__main__":
    main()
