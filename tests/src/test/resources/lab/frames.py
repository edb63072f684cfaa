#!/usr/bin/python3
"""Frame toolkit for the uncloud-hook netns lab. Run with Debian's /usr/bin/python3 as root.

Modes
  capture IFACE NONCE_HEX [TIMEOUT_S]
      Raw AF_PACKET capture on IFACE (no scapy import, so it starts fast). Prints "READY" once the
      socket is bound, then records every received frame that carries the batch trailer
      b"UCF" + NONCE. It stops when the batch's end frame arrives (or stdin closes, or TIMEOUT_S),
      drains for a short grace period, prints "FRAME <hex>" per frame in arrival order, then
      "END" (end frame seen), "EOF" (stdin closed first) or "TIMEOUT".
  receive PORT TIMEOUT_S COUNT
      A UDP socket on [::]:PORT (IPv4 too): what the receiving host's kernel delivers after its own
      reassembly. Prints "READY", then "DGRAM <source> <source port> <length> <sha256>" per datagram,
      then "DONE" after COUNT datagrams or "TIMEOUT".
  send
      One JSON request on stdin, one JSON answer on stdout (see handle()).
  serve
      The same, one request per stdin line, one answer line per request: scapy is imported once
      per test class instead of once per batch.

Request: {"nonce": "<16 hex>", "ports": [{"netns": "ucf1-vm1", "iface": "eth0",
           "vars": {"MAC": "52:54:00:aa:bb:01", ...},
           "frames": [{"name": "arp-request", "expr": "Ether(src=MAC, dst=BCAST)/ARP(...)"}]}],
          "end": {"netns": "ucf1-inj", "iface": "eth0"}}
Every frame is the scapy expression, evaluated with scapy.all and the port's vars in scope, plus a
trailer b"UCF" + nonce + index (Ethernet padding, outside every length field) that makes each frame
unique. Each frame is sent once from a raw socket opened inside the port's network namespace
(setns), in request order; the end frame (trailer index 0xffff) goes last from "end".
Answer: {"sent": [{"name": ..., "hex": ...}], "end": "<hex>"} or {"error": "..."}.
"""
import ctypes
import json
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
CLONE_NEWNET = 0x40000000
END_INDEX = 0xFFFF


def trailer(nonce, index):
    return b"UCF" + nonce + struct.pack("!H", index)


# ---------------------------------------------------------------- capture (no scapy)

def capture(iface, nonce_hex, timeout):
    nonce = bytes.fromhex(nonce_hex)
    tag = b"UCF" + nonce
    end = trailer(nonce, END_INDEX)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    # A veth/bridge moves 802.1Q/802.1ad tags into skb metadata; AF_PACKET then hands out the
    # frame without its tag and the tag in PACKET_AUXDATA. Put it back so bytes compare exactly.
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((iface, ETH_P_ALL))
    print("READY", flush=True)
    frames = []
    deadline = time.monotonic() + timeout
    stop_at = None
    stdin_open = True
    status = "TIMEOUT"
    seen_end = False
    while True:
        now = time.monotonic()
        limit = stop_at if stop_at is not None else deadline
        if now >= limit:
            if stop_at is not None:
                status = "END" if seen_end else "EOF"
            break
        watch = [s, sys.stdin] if stdin_open else [s]
        ready, _, _ = select.select(watch, [], [], limit - now)
        if sys.stdin in ready:
            if not sys.stdin.readline():
                stdin_open = False
                if stop_at is None:
                    stop_at = time.monotonic() + 0.05
        if s not in ready:
            continue
        data, anc, _flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(32))
        if addr[2] == PACKET_OUTGOING:
            continue
        for level, kind, cdata in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= 20:
                st, _len, _snap, _mac, _net, tci, tpid = struct.unpack("IIIHHHH", cdata[:20])
                if st & TP_STATUS_VLAN_VALID:
                    if not st & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        if tag not in data:
            continue
        if data.endswith(end):
            seen_end = True
            if stop_at is None:
                # frames sent before the end frame may still be in another CPU's backlog
                stop_at = time.monotonic() + 0.1
            continue
        frames.append(data)
    out = sys.stdout
    for f in frames:
        out.write("FRAME " + f.hex() + "\n")
    out.write(status + "\n")
    out.flush()


def receive(port, timeout, count):
    import hashlib
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    print("READY", flush=True)
    deadline = time.monotonic() + timeout
    got = 0
    while got < count:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            print("TIMEOUT", flush=True)
            return
        data, addr = s.recvfrom(65536)
        src = addr[0][7:] if addr[0].startswith("::ffff:") else addr[0]
        print("DGRAM %s %d %d %s" % (src, addr[1], len(data), hashlib.sha256(data).hexdigest()), flush=True)
        got += 1
    print("DONE", flush=True)


# ---------------------------------------------------------------- send (scapy)

_libc = None
_scope = None


def setns(path):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns %s: %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)
    # never send a frame anywhere but into the lab: prove we are in that namespace now
    if os.stat("/proc/thread-self/ns/net").st_ino != os.stat(path).st_ino:
        raise OSError("setns %s did not take effect" % path)


def scope():
    global _scope
    if _scope is None:
        import logging
        logging.getLogger("scapy").setLevel(logging.ERROR)
        import scapy.all as sa
        sa.conf.verb = 0
        ns = {k: getattr(sa, k) for k in dir(sa) if not k.startswith("_")}

        def snma(addr):
            """solicited-node multicast address of an IPv6 address"""
            return sa.inet_ntop(socket.AF_INET6, sa.in6_getnsma(sa.inet_pton(socket.AF_INET6, addr)))

        def mcmac(addr):
            """Ethernet multicast MAC of an IPv6 multicast address (33:33:...)"""
            return sa.in6_getnsmac(sa.inet_pton(socket.AF_INET6, addr))

        ns["snma"] = snma
        ns["mcmac"] = mcmac
        ns["BCAST"] = "ff:ff:ff:ff:ff:ff"
        _scope = ns
    return _scope


def build(expr, variables):
    env = dict(scope())
    env.update(variables)
    return bytes(eval(expr, env))  # test-authored scapy expressions only


def send_from(netns, iface, frames):
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if "/" in netns or not netns.startswith(os.environ.get("UNCLOUD_LAB_PREFIX", "ucf")):
            raise ValueError("not a lab namespace: %r" % netns)
        setns("/run/netns/" + netns)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            s.bind((iface, 0))
            for f in frames:
                s.send(f)
        finally:
            s.close()
    finally:
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back home")
        os.close(home)


def pin_to_one_cpu():
    """Send everything from one CPU. veth hands a frame to the receive backlog of the CPU that sent
    it, and a backlog is FIFO (bridging to the observer's veth re-queues on the same CPU), so the
    observer sees the end frame only after every frame sent before it. Without this, a spoofed frame
    queued on another CPU could arrive after the capture stopped and look dropped."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def handle(req):
    nonce = bytes.fromhex(req["nonce"])
    built = []  # (port, name, bytes)
    index = 0
    for port in req["ports"]:
        frames = []
        for fr in port["frames"]:
            try:
                b = build(fr["expr"], port.get("vars", {}))
            except Exception as e:  # report which case is wrong
                raise ValueError("frame %s: %s: %s" % (fr["name"], type(e).__name__, e))
            b += trailer(nonce, index)
            index += 1
            frames.append(b)
            built.append({"name": fr["name"], "hex": b.hex()})
        port["_bytes"] = frames
    for port in req["ports"]:
        send_from(port["netns"], port["iface"], port["_bytes"])
    end = None
    if req.get("end"):
        e = req["end"]
        scope()
        end = build("Ether(src=MAC, dst=BCAST, type=0x88b5)/Raw(b'uncloud-lab-end')",
                    {"MAC": e.get("mac", "02:00:00:00:00:ee")}) + trailer(nonce, END_INDEX)
        send_from(e["netns"], e["iface"], [end])
    return {"sent": built, "end": end.hex() if end else None}


def answer(line):
    try:
        return handle(json.loads(line))
    except Exception as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}


def main(argv):
    if len(argv) >= 3 and argv[0] == "capture":
        capture(argv[1], argv[2], float(argv[3]) if len(argv) > 3 else 20.0)
    elif len(argv) == 4 and argv[0] == "receive":
        receive(int(argv[1]), float(argv[2]), int(argv[3]))
    elif argv == ["send"]:
        pin_to_one_cpu()
        print(json.dumps(answer(sys.stdin.read())), flush=True)
    elif argv == ["serve"]:
        pin_to_one_cpu()
        scope()
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(answer(line)), flush=True)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
