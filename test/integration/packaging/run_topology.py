#!/usr/bin/env python3
"""The compose topology, run natively on 127.0.0.1 (issue 7): no Docker engine is needed to find
out whether the compose services work together.

Starts each compose.yaml service's own command (binaries from the build tree, /etc/presenced
mapped to config/compose, ports swapped for free loopback ports) and runs each service's own
healthcheck command until it passes: mosquitto must load broker-ext with config/compose's options,
presenced must become ready on config/compose/presenced.yaml, the simulator's devices must show up
as online in presenced's /metrics, and the sink must answer. Every wait is bounded.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

OURS = {
    "presenced": "presence/app/presenced",
    "presence-sim": "presence/tools/sim/presence-sim",
    "presence-alert-sink": "presence/tools/alert-sink/presence-alert-sink",
}
DEVICES = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, every=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s: {what}")


class Topology:
    def __init__(self, repo, build, work):
        self.repo, self.build, self.work = repo, build, work
        self.procs = []
        self.compose = yaml.safe_load(open(os.path.join(repo, "compose.yaml"), encoding="utf-8"))
        self.mqtt_port, self.http_port = free_port(), free_port()
        self.sink_port = None

    def service(self, name):
        return self.compose["services"][name]

    def argv(self, name, subst):
        out = []
        for a in self.service(name)["command"]:
            a = a.replace("/etc/presenced", os.path.join(self.repo, "config/compose"))
            out.append(subst.get(a, a))
        out[0] = os.path.join(self.build, OURS[out[0]]) if out[0] in OURS else shutil.which(out[0]) or out[0]
        return out

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.work, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             cwd=self.work, start_new_session=True)
        self.procs.append((name, p))
        return p

    def healthy(self, name, port_map):
        """Runs the service's own healthcheck command, ports and host-side paths swapped."""
        test = self.service(name)["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = [a.replace("$$", "$") for a in test[1:]]
        for inside, outside in port_map.items():
            argv = [a.replace(f"/127.0.0.1/{inside}", f"/127.0.0.1/{outside}") for a in argv]
        if argv[0] == "mosquitto_sub":
            argv += ["-p", str(self.mqtt_port)]
        argv = [a.replace("/var/lib/presence-sim/truth.jsonl", os.path.join(self.work, "truth.jsonl"))
                for a in argv]
        r = subprocess.run(argv, capture_output=True, timeout=15)
        return r.returncode == 0

    def log(self, name):
        try:
            return open(os.path.join(self.work, name + ".log"), encoding="utf-8", errors="replace").read()
        except OSError:
            return ""

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--build", required=True)
    a = ap.parse_args()
    a.repo, a.build = os.path.abspath(a.repo), os.path.abspath(a.build)

    for b in OURS.values():
        if not os.access(os.path.join(a.build, b), os.X_OK):
            print(f"SKIP: {b} not built")
            return 0
    plugin = os.path.join(a.build, "broker-ext/mosquitto_presence.so")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(plugin) or not os.access(mosquitto, os.X_OK) or not shutil.which("mosquitto_sub"):
        print("SKIP: needs mosquitto, mosquitto_sub and the broker-ext plugin")
        return 0

    with tempfile.TemporaryDirectory(prefix="presence-topology-") as work:
        t = Topology(a.repo, a.build, work)
        try:
            # mosquitto: config/compose/mosquitto.conf, loopback port, plugin from the build tree.
            conf = open(os.path.join(a.repo, "config/compose/mosquitto.conf"), encoding="utf-8").read()
            conf, n = re.subn(r"^listener 1883$", f"listener {t.mqtt_port} 127.0.0.1", conf, flags=re.M)
            assert n == 1, "config/compose/mosquitto.conf: expected one 'listener 1883' line"
            conf = conf.replace("/usr/lib/mosquitto/mosquitto_presence.so", plugin)
            with open(os.path.join(work, "mosquitto.conf"), "w") as f:
                f.write(conf)
            argv = t.argv("mosquitto", {"/etc/presenced/mosquitto.conf": os.path.join(work, "mosquitto.conf")})
            argv = [mosquitto if x.endswith("mosquitto") and i == 0 else x for i, x in enumerate(argv)]
            argv[argv.index("-c") + 1] = os.path.join(work, "mosquitto.conf")
            t.start("mosquitto", argv)
            wait_for(lambda: t.healthy("mosquitto", {}), 15, "mosquitto healthcheck (broker-ext boot)")
            print("ok: mosquitto healthy (broker-ext loaded with config/compose options)")

            # alert-sink on a free loopback port.
            argv = t.argv("alert-sink", {"0.0.0.0": "127.0.0.1", "9180": "0",
                                         "/var/lib/alert-sink/alerts.jsonl": os.path.join(work, "alerts.jsonl")})
            env = dict(os.environ, WEBHOOK_SECRET="topology-secret")
            t.start("alert-sink", argv, env)

            def sink_port():
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", t.log("alert-sink"))
                if m:
                    t.sink_port = int(m.group(1))
                return bool(m)
            wait_for(sink_port, 10, "alert-sink listening line")
            wait_for(lambda: t.healthy("alert-sink", {9180: t.sink_port}), 10, "alert-sink healthcheck")
            print("ok: alert-sink healthy")

            # presenced on config/compose/presenced.yaml; only the addresses come from the environment.
            env = dict(os.environ, MQTT_URI=f"tcp://127.0.0.1:{t.mqtt_port}",
                       PRESENCED_HTTP_LISTEN=f"127.0.0.1:{t.http_port}",
                       PRESENCED_HTTP_TOKEN="topology-token", WEBHOOK_SECRET="topology-secret",
                       PRESENCED_STORE_DIR=os.path.join(work, "store"),
                       ALERT_SINK_URL=f"http://127.0.0.1:{t.sink_port}")
            os.makedirs(os.path.join(work, "store"))
            t.start("presenced", t.argv("presenced", {}), env)
            wait_for(lambda: t.healthy("presenced", {9188: t.http_port}), 30,
                     "presenced healthcheck (/readyz)")
            print("ok: presenced ready")

            # The simulator's own command, a smaller fleet for a quick run.
            argv = t.argv("presence-sim", {"mosquitto:1883": f"127.0.0.1:{t.mqtt_port}",
                                           "/var/lib/presence-sim/truth.jsonl": os.path.join(work, "truth.jsonl")})
            argv += ["--devices", str(DEVICES), "--behaviour", "well_behaved:1", "--progress", "0"]
            t.start("presence-sim", argv)
            wait_for(lambda: t.healthy("presence-sim", {}), 15, "presence-sim healthcheck (truth file)")

            def online():
                req = urllib.request.Request(f"http://127.0.0.1:{t.http_port}/metrics",
                                             headers={"Authorization": "Bearer topology-token"})
                body = urllib.request.urlopen(req, timeout=5).read().decode()
                m = re.search(r'^presence_devices\{state="online"\} (\d+)', body, re.M)
                return m is not None and int(m.group(1)) >= DEVICES
            wait_for(online, 30, f"{DEVICES} simulated devices online in presenced's /metrics", every=0.5)
            print(f"ok: {DEVICES} simulated devices online in presenced")
            for name, p in t.procs:
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited with {p.returncode}")
            return 0
        except Exception as e:  # noqa: BLE001 - report with every log, then fail
            print(f"FAIL: {e}")
            for name, _ in t.procs:
                print(f"--- {name}.log (last 40 lines)")
                print("\n".join(t.log(name).splitlines()[-40:]))
            return 1
        finally:
            t.stop()


if __name__ == "__main__":
    sys.exit(main())
