#!/usr/bin/env python3
"""scripts/demo.sh ends by itself (issue 17): `demo.sh --duration 60` exits within 15 s after the
60 s, and every process it started is gone (the viewer's mosquitto_sub pipeline once kept `wait`
blocking forever). Also checks what it promises to print: the dashboard URL with the token, the
presencectl environment, the story's chapters, one START line instead of ~200 `STATE ... online`
lines, and that the broker log is kept.

With --ha it runs `demo.sh --ha --duration 60` (issue 13: etcd on loopback and two presenced,
the leader killed mid-story) and also requires the takeover line and that etcd and the second
presenced are stopped too.

Runs the demo on free loopback ports with the test's build tree (no new configure or build).
Every process the demo starts carries a marker in its environment; after the demo exited, no
process may still carry it. If the demo hangs, its process group is killed (by its pid) and the
test fails.
"""
import argparse
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

TMP = tempfile.mkdtemp(prefix="demo-exit-test-")
DURATION = 60
GRACE = 15          # the bound: exit within 15 s after --duration
STARTUP_LIMIT = 120  # deps check, no-op build, broker/presenced/sink start-up


def free_port():
    """A loopback port free a moment ago, below the ephemeral range (as
    presence/common/loopback_port.h: a port from that range can be handed to an outgoing
    connection before the demo binds it)."""
    import random
    for _ in range(200):
        port = random.randint(20000, 32767)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free loopback port in 20000-32767")


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def marked_processes(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    with open(f"/proc/{pid}/cmdline", "rb") as c:
                        cmd = c.read().replace(b"\0", b" ").decode(errors="replace")
                        found.append(f"{pid}: {cmd}")
        except OSError:
            pass
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--ha", action="store_true")
    a = ap.parse_args()

    marker = "PRESENCE_DEMO_TEST_" + uuid.uuid4().hex
    picked = set()
    names = ["MQTT_PORT", "HTTP_PORT", "SINK_PORT"]
    if a.ha:
        names += ["HTTP_PORT_B", "HA_ETCD_PORT", "HA_ETCD_PEER_PORT"]
    while len(picked) < len(names):
        picked.add(free_port())
    ports = dict(zip(names, sorted(picked)))
    env = dict(os.environ, PRESENCE_BUILD_DIR=a.build, PRESENCE_JOBS="1", **{k: str(v) for k, v in ports.items()})
    env[marker] = "1"
    env["TMPDIR"] = TMP  # the demo's work directory goes here and is removed at the end
    t0 = time.monotonic()
    args = ["--ha"] if a.ha else []
    proc = subprocess.Popen(["bash", os.path.join(a.repo, "scripts/demo.sh"), *args, "--duration", str(DURATION)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    lines = []
    story_at = None
    failures = []
    try:
        fd = proc.stdout.fileno()
        buf = ""
        eof = False
        while True:
            limit = (story_at + DURATION + GRACE) if story_at else (t0 + STARTUP_LIMIT)
            if time.monotonic() > limit:
                failures.append("the demo did not exit within %d s after --duration %d" % (GRACE, DURATION)
                                if story_at else "the story did not start within %d s" % STARTUP_LIMIT)
                break
            chunk = b""
            if not eof and select.select([fd], [], [], 0.2)[0]:
                chunk = os.read(fd, 65536)
                eof = not chunk
            if chunk:
                buf += chunk.decode(errors="replace")
                *done, buf = buf.split("\n")
                for line in done:
                    lines.append(line)
                    if story_at is None and "CHAPTER 0:00" in line:
                        story_at = time.monotonic()
            elif eof and proc.poll() is not None:
                break
            elif eof:
                time.sleep(0.2)
        if buf:
            lines.append(buf)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the demo's own group, by its pid
            proc.wait(timeout=10)
    took = time.monotonic() - story_at if story_at else None
    out = "\n".join(lines)

    if proc.returncode != 0 and not failures:
        failures.append(f"demo exited with status {proc.returncode}")
    if took is not None and took > DURATION + GRACE:
        failures.append(f"exited {took - DURATION:.1f} s after --duration (limit {GRACE} s)")
    if took is not None and took < DURATION - 2:
        failures.append(f"exited after {took:.1f} s, before --duration {DURATION}")
    # Everything it started is stopped: nothing carries the marker, no port is left listening.
    deadline = time.monotonic() + 3
    left = marked_processes(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = marked_processes(marker)
    if left:
        failures.append("processes left running: " + "; ".join(left))
        for p in left:
            try:
                os.kill(int(p.split(":")[0]), signal.SIGKILL)
            except OSError:
                pass
    for name, port in ports.items():
        if listening(port):
            failures.append(f"something still listens on {name} {port}")

    http = ports["HTTP_PORT"]
    expect = {
        "the dashboard URL": f"dashboard: http://127.0.0.1:{http}/",
        "how to pass the token": f"?token=",
        "the presencectl environment": f"export PRESENCE_URL=http://127.0.0.1:{http} PRESENCE_TOKEN=",
        "the first chapter": "CHAPTER 0:00",
        "the 1:00 chapter": "CHAPTER 1:00",
        "the start-up summary": " START ",
        "the work directory at exit": "demo stopped",
    }
    if a.ha:
        expect["who leads"] = " HA presenced-"
        expect["the kill of the leader"] = " HA kill -9 presenced-"
        expect["the takeover"] = " HA TAKEOVER presenced-"
    for what, text in expect.items():
        if text not in out:
            failures.append(f"output lacks {what} ({text!r})")
    online_states = len(re.findall(r" STATE \S+\s+online ", out))
    if online_states > 60:
        failures.append(f"{online_states} 'STATE ... online' lines: the start-up is not summarised")
    m = re.search(r"== work directory: (\S+)", out)
    if not m:
        failures.append("no work directory printed")
    else:
        log = os.path.join(m.group(1), "mosquitto.log")
        if not os.path.exists(log) or os.path.getsize(log) == 0:
            failures.append(f"the broker log {log} is missing or empty")

    print(f"demo: --duration {DURATION}: exited {took - DURATION:+.1f} s after it" if took is not None
          else "demo: the story never started")
    if failures:
        print("--- demo output (tail)\n" + "\n".join(lines[-60:]))
        for f in failures:
            print("FAIL:", f)
        return 1
    print(f"demo: {len(lines)} lines, {online_states} STATE online lines after START; everything it started is gone")
    return 0


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        # The demo's work directory lives under the test's TMPDIR: removed even when the test
        # itself fails with an exception.
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(rc)
