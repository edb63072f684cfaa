#!/usr/bin/python3
"""syslog_receiver.py PATH SECONDS: binds a Unix datagram socket at PATH (what /dev/log is), prints
READY, then prints every datagram it receives, one per line, until none came for SECONDS."""
import os
import socket
import sys

path, quiet = sys.argv[1], float(sys.argv[2])
if os.path.exists(path):
    os.unlink(path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("READY", flush=True)
s.settimeout(quiet)
try:
    while True:
        print(s.recv(65536).decode("utf-8", "replace").replace("\n", " "), flush=True)
except socket.timeout:
    pass
