#!/usr/bin/python3
"""ptyrun.py OUTFILE CMD ARGS... - run CMD with its stderr on a fresh
pseudo-terminal (stdin /dev/null, stdout to OUTFILE), print everything it
wrote to the terminal on our stdout, and exit with its status: how a test
sees what a person at a terminal would see on stderr."""
import os
import pty
import subprocess
import sys

master, slave = pty.openpty()
with open(sys.argv[1], "wb") as out:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=slave)
os.close(slave)
seen = b""
while True:
    try:
        d = os.read(master, 4096)
    except OSError:      # EIO: the last writer closed the terminal
        break
    if not d:
        break
    seen += d
rc = p.wait()
sys.stdout.buffer.write(seen)
sys.exit(rc)
