#!/usr/bin/env python3
"""Checks packaging/systemd/*.service (issue 7).

1. Parses presenced.service and requires the hardening and lifecycle keys docs/deploy.md promises
   (a unit that silently loses ProtectSystem= would still start: only a check notices).
2. Every ExecStart/ExecStartPre/ExecReload binary must be something this repo builds (or a system
   tool), and its flags must be ones the binary accepts (its usage text).
3. Runs `systemd-analyze verify` when it is installed, on a copy whose binary paths point at the
   build tree (the unit names the installed paths, which do not exist on a build machine).

--expect-failures UNIT: check UNIT instead and succeed only if every "# expect: <text>" line in it
matches a reported problem (proves the checks can fail).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REQUIRED = {
    # key: required value (None = any non-empty value, "" = must be present and empty)
    "ProtectSystem": "strict",
    "StateDirectory": "presenced",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "ProtectHome": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": "@system-service",
    "LimitNOFILE": None,
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "ExecStart": None,
}
# Either one of these gives a non-root user.
USER_KEYS = ("DynamicUser", "User")
OWN_BINARIES = {"presenced": "presence/app/presenced"}
SYSTEM_BINARIES = {"/bin/kill"}


def parse_unit(path):
    """[(section, key, value)] in file order; repeated keys kept (systemd appends them)."""
    entries, section = [], None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" not in line:
            entries.append((section, None, line))
            continue
        key, value = line.split("=", 1)
        entries.append((section, key.strip(), value.strip()))
    return entries


def check_unit(path, build, problems):
    entries = parse_unit(path)
    for section, key, value in entries:
        if key is None:
            problems.append(f"{path}: not a key=value line: {value}")
    service = [(k, v) for s, k, v in entries if s == "Service" and k]
    values = {}
    for k, v in service:
        values.setdefault(k, []).append(v)
    if not any(s == "Install" for s, _, _ in entries):
        problems.append(f"{path}: no [Install] section (systemctl enable would fail)")
    for key, want in REQUIRED.items():
        got = values.get(key)
        if got is None:
            problems.append(f"{path}: missing {key}=")
        elif want is None:
            if not any(got):
                problems.append(f"{path}: {key}= is empty")
        elif want not in got:
            problems.append(f"{path}: {key}= is {got!r}, want {want!r}")
    if not any(values.get(k) and values[k][-1] not in ("", "no", "root") for k in USER_KEYS):
        problems.append(f"{path}: runs as root: set DynamicUser=yes or User=")
    if "ProtectSystem" in values and values.get("StateDirectory") is None:
        problems.append(f"{path}: ProtectSystem=strict without StateDirectory: no writable state")

    for key in ("ExecStartPre", "ExecStart", "ExecReload"):
        for cmd in values.get(key, []):
            argv = cmd.lstrip("-@:+!").split()
            if not argv:
                continue
            binary = argv[0]
            if binary in SYSTEM_BINARIES:
                continue
            name = os.path.basename(binary)
            if name not in OWN_BINARIES:
                problems.append(f"{path}: {key}: unknown binary {binary!r}")
                continue
            check_flags(path, key, name, argv[1:], build, problems)


def check_flags(path, key, name, args, build, problems):
    binary = os.path.join(build, OWN_BINARIES[name])
    if not os.access(binary, os.X_OK):
        print(f"note: {binary} not built; flags of {name} not checked")
        return
    out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    usage = out.stdout + out.stderr
    for a in args:
        if a.startswith("--") and not re.search(re.escape(a.split("=")[0]) + r"\b", usage):
            problems.append(f"{path}: {key}: {name} has no flag {a} (its usage: {usage.strip()!r})")


def systemd_verify(path, build, problems):
    tool = shutil.which("systemd-analyze")
    if not tool:
        print("note: systemd-analyze not installed; verify skipped (key checks still ran)")
        return
    text = open(path, encoding="utf-8").read()
    real = os.path.join(build, OWN_BINARIES["presenced"])
    # Installed paths do not exist here; verify checks that Exec binaries are executable.
    text = text.replace("/usr/local/bin/presenced", real if os.access(real, os.X_OK) else "/bin/true")
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, os.path.basename(path))
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text)
        r = subprocess.run([tool, "verify", "--man=no", copy], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "SYSTEMD_LOG_COLOR": "0"})
        # Lines about other units (the host's own, e.g. a missing mosquitto.service in After=)
        # are not ours; anything naming our unit is.
        ours = [l for l in (r.stdout + r.stderr).splitlines() if os.path.basename(path) in l]
        for line in ours:
            problems.append(f"systemd-analyze verify: {line.replace(d + '/', '')}")
        print(f"systemd-analyze verify: exit {r.returncode}, {len(ours)} finding(s) for our unit")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--expect-failures")
    a = ap.parse_args()
    a.repo, a.build = os.path.abspath(a.repo), os.path.abspath(a.build)
    units = [a.expect_failures] if a.expect_failures else [
        os.path.join(a.repo, "packaging/systemd/presenced.service")]
    problems = []
    for unit in units:
        if not os.path.exists(unit):
            problems.append(f"{unit}: missing")
            continue
        check_unit(unit, a.build, problems)
        if not a.expect_failures:
            systemd_verify(unit, a.build, problems)
    for p in problems:
        print("problem:", p)
    if a.expect_failures:
        expected = re.findall(r"^# expect: (.+)$", open(a.expect_failures, encoding="utf-8").read(), re.M)
        missing = [e for e in expected if not any(e in p for p in problems)]
        for e in missing:
            print("NOT DETECTED:", e)
        if not expected:
            print("fixture has no '# expect:' lines")
            return 1
        return 1 if missing else 0
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
