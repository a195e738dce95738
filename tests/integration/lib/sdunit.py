#!/usr/bin/python3
"""sdunit.py UNIT INSTANCE ETCDIR SOCKET TIMEOUT [run|fail] - start a
systemd service template instance the way systemd would, where systemd is
not running (a container), for t1015.

What it does as systemd does (systemd.service(5), systemd.exec(5)):
- [Service] EnvironmentFile= is read (/etc/vecvault is replaced by ETCDIR,
  so the real /etc is never read); %i, %I and %% specifiers are expanded;
- LoadCredential=ID:PATH copies PATH to a fresh private directory as ID
  (dir 0500, file 0400) named by $CREDENTIALS_DIRECTORY;
- ExecStart= is split into words: "$VAR" alone is split on whitespace
  (an empty one vanishes), "${VAR}" is substituted within its word;
- the process gets only the unit's environment plus PATH and the VECVAULT_*
  variables of the tests, with $NOTIFY_SOCKET naming a datagram socket this
  script listens on: SOCKET "@NAME" is an abstract name, else a path;
- Type=notify: only READY=1 from the main pid (NotifyAccess=main, checked
  through SO_PASSCRED) counts; stop is SIGTERM to the main process
  (KillMode=mixed), then it must exit within the timeout.

Mode "run": start, wait for READY=1, check the mount at that very moment,
write and read a file, stop, check STOPPING=1 and a clean exit.  Mode
"fail": the service must exit non-zero without READY=1.
Prints "OK name" / "FAIL name: why" lines; the shell test counts them.
"""
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

unit_path, instance, etcdir, sockname, timeout = sys.argv[1:6]
mode = sys.argv[6] if len(sys.argv) > 6 else "run"
timeout = float(timeout)


def step(name, ok, why=""):
    print(("OK %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)
    return ok


def parse_unit(path):
    """{section: [(key, value), ...]}, with backslash continuations."""
    secs, cur, pending = {}, None, ""
    for raw in open(path):
        line = raw.rstrip("\n")
        if pending:
            line, pending = pending + " " + line.lstrip(), ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            cur = secs.setdefault(s[1:-1], [])
            continue
        k, _, v = s.partition("=")
        cur.append((k.strip(), v.strip()))
    return secs


def specifiers(v):
    out, i = [], 0
    while i < len(v):
        if v[i] == "%" and i + 1 < len(v):
            c = v[i + 1]
            out.append({"i": instance, "I": instance.replace("-", "/"), "%": "%",
                        "n": os.path.basename(unit_path).replace("@.", "@%s." % instance)}
                       .get(c, "%" + c))
            i += 2
        else:
            out.append(v[i])
            i += 1
    return "".join(out)


def etc(p):
    return etcdir + p[len("/etc/vecvault"):] if p.startswith("/etc/vecvault") else p


def env_file(path, env):
    for line in open(path):
        s = line.strip()
        if not s or s[0] in "#;" or "=" not in s:
            continue
        k, _, v = s.partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        env[k.strip()] = v


def exec_words(line, env):
    while line and line[0] in "@-:+!":
        line = line[1:]
    words = []
    for w in shlex.split(line):
        if w.startswith("$") and not w.startswith("${") and w[1:].replace("_", "").isalnum():
            words.extend(env.get(w[1:], "").split())
            continue
        while "${" in w:
            a = w.index("${")
            b = w.index("}", a)
            w = w[:a] + env.get(w[a + 2:b], "") + w[b + 1:]
        words.append(w)
    return words


svc = parse_unit(unit_path).get("Service", [])
get = lambda k: [v for kk, v in svc if kk == k]
step("the unit is Type=notify", get("Type") == ["notify"], repr(get("Type")))

env = {k: v for k, v in os.environ.items() if k == "PATH" or k.startswith("VECVAULT_")}
for f in get("EnvironmentFile"):
    f = specifiers(f)
    optional = f.startswith("-")
    f = etc(f.lstrip("-"))
    if os.path.exists(f) or not optional:
        env_file(f, env)
for e in get("Environment"):
    for kv in shlex.split(specifiers(e)):
        k, _, v = kv.partition("=")
        env[k] = v

creds = tempfile.mkdtemp(prefix="vv-creds.")
for c in get("LoadCredential"):
    cid, _, src = specifiers(c).partition(":")
    dst = os.path.join(creds, cid)
    shutil.copyfile(etc(src), dst)
    os.chmod(dst, 0o400)
os.chmod(creds, 0o500)
env["CREDENTIALS_DIRECTORY"] = creds

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
sock.bind("\0" + sockname[1:] if sockname.startswith("@") else sockname)
env["NOTIFY_SOCKET"] = sockname

argv = exec_words(specifiers(get("ExecStart")[0]), env)
mnt = env.get("MNT", "")
print("# ExecStart: %s" % " ".join(argv), flush=True)
log = open(os.environ.get("SDUNIT_LOG", "/dev/null"), "ab")
proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def recv(deadline):
    """Next (text, sender pid) from the socket, or (None, None) at the deadline
    or when the main process has exited and nothing is queued."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, None
        sock.settimeout(min(left, 0.2))
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            if proc.poll() is not None:
                return None, None
            continue
        pid = None
        for lvl, typ, cd in anc:
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cd[:12])[0]
        return data.decode(), pid


def mounted(path):
    with open("/proc/self/mounts") as f:
        for line in f:
            p = line.split()
            if p[1] == path:
                return p[2]
    return None


def stop_and_wait():
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


ready = False
try:
    deadline = time.monotonic() + timeout
    while True:
        msg, pid = recv(deadline)
        if msg is None:
            break
        fields = dict(l.partition("=")[::2] for l in msg.split("\n") if l)
        if fields.get("READY") == "1":
            # Check the mount before anything else happens: READY=1 must
            # mean "usable now", not "soon".
            fs = mounted(mnt)
            try:
                os.listdir(mnt)
                usable = fs == "fuse.vecvault"
            except OSError as e:
                usable = False
            ready = True
            break
    if mode == "fail":
        rc = proc.wait(timeout) if proc.poll() is None else proc.returncode
        step("no READY=1 from a service that cannot mount", not ready)
        step("the service exits non-zero", rc not in (0, None), "exit %r" % rc)
        step("nothing is mounted", mounted(mnt) is None)
        sys.exit(0)
    if not step("READY=1 arrives", ready, "exit %r" % proc.poll()):
        stop_and_wait()
        sys.exit(0)
    step("READY=1 comes from the main pid (NotifyAccess=main)", pid == proc.pid,
         "sender %r, main %r" % (pid, proc.pid))
    step("at READY=1 the vault is mounted and answers", usable, "fstype %r" % fs)
    f = os.path.join(mnt, "from-systemd")
    if os.path.exists(f):
        step("data from the previous start reads back", open(f).read() == "hello\n")
    else:
        with open(f, "w") as fh:
            fh.write("hello\n")
        step("a file is written and reads back", open(f).read() == "hello\n")
    secret = [open(os.path.join(creds, c)).read().strip() for c in os.listdir(creds)]
    step("no credential appears on the command line or in the environment",
         secret and not any(s in " ".join(argv) or any(s in v for v in env.values())
                            for s in secret))
    proc.send_signal(signal.SIGTERM)
    stopping = False
    deadline = time.monotonic() + timeout
    while True:
        msg, pid2 = recv(deadline)
        if msg is None:
            break
        if "STOPPING=1" in msg.split("\n"):
            stopping = True
            break
    rc = stop_and_wait()
    step("STOPPING=1 after SIGTERM", stopping)
    step("the service exits 0 after SIGTERM", rc == 0, "exit %r" % rc)
    step("SIGTERM unmounted the vault", mounted(mnt) is None)
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if mnt and mounted(mnt):
        subprocess.call(["fusermount3", "-uz", mnt])
    os.chmod(creds, 0o700)
    shutil.rmtree(creds, ignore_errors=True)
    if not sockname.startswith("@"):
        os.unlink(sockname)
