#!/usr/bin/env python3
"""compose.yaml + Dockerfile must not rot silently (issue 7).

For compose.yaml (or, with --expect-failures, a fixture) this checks that:
  * the four demo services exist and each has a healthcheck;
  * every command / healthcheck binary is either one of ours (a CMake target, built by the
    Dockerfile's build stage and copied into the runtime stage) or comes from a Debian package the
    runtime stage installs;
  * our binaries accept every --flag the file passes (their --help / usage text, when built);
  * every bind-mounted source exists, and every file argument under a bind mount exists in the repo;
  * the mosquitto config loads a plugin the Dockerfile installs, with only documented plugin_opt_*;
  * presenced --check-config accepts the mounted config and presence-sim --check the scenario
    (when built);
  * the runtime stage's packages provide every shared library our built binaries link (ldd, dpkg);
  * `docker-compose config -q` accepts the file (when docker-compose is installed), and refuses it
    without PRESENCED_HTTP_TOKEN.
--expect-failures FILE: succeed only if every "# expect: <text>" line of FILE matches a problem.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

SERVICES = ("mosquitto", "presenced", "presence-sim", "alert-sink")
# The `ha` profile (issue 13, docs/ha.md): etcd and the pair, each member with an ha: section.
HA_SERVICES = ("etcd", "presenced-a", "presenced-b", "presence-sim-ha")
# Our binaries: CMake target -> path in the build tree.
OURS = {
    "presenced": "presence/app/presenced",
    "presence-sim": "presence/tools/sim/presence-sim",
    "presence-alert-sink": "presence/tools/alert-sink/presence-alert-sink",
}
PLUGIN_TARGET, PLUGIN_BUILD_PATH = "mosquitto_presence", "broker-ext/mosquitto_presence.so"
# Binaries from Debian packages the runtime stage must install (None: in every debian:12 image).
SYSTEM = {"mosquitto": "mosquitto", "mosquitto_sub": "mosquitto-clients",
          "mosquitto_pub": "mosquitto-clients", "etcd": "etcd-server", "bash": None, "sh": None, "test": None}
# Packages every debian:12 image has (Essential / required by apt).
BASE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1", "zlib1g", "libzstd1", "libgnutls30",
                 "libselinux1", "libcrypt1"}


class Checker:
    def __init__(self, repo, build, compose_path):
        self.repo, self.build, self.compose_path = repo, build, compose_path
        self.problems = []

    def problem(self, msg):
        self.problems.append(msg)

    # --- sources -------------------------------------------------------------------------------
    def cmake_targets(self):
        targets = set()
        for root, dirs, files in os.walk(self.repo):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not d.startswith("build")]
            if "CMakeLists.txt" in files:
                text = open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8").read()
                targets.update(re.findall(
                    r"(?:presence_executable|add_executable|add_library)\(\s*([\w.+-]+)", text))
        return targets

    def dockerfile(self):
        text = open(os.path.join(self.repo, "Dockerfile"), encoding="utf-8").read()
        text = re.sub(r"\\\n", " ", text)
        stages = re.split(r"^FROM\s+", text, flags=re.M)[1:]
        if len(stages) < 2:
            self.problem("Dockerfile: expected a build stage and a runtime stage")
            return set(), {}, set()
        build, runtime = stages[0], stages[-1]
        for s in stages:
            if not s.startswith("debian:12"):
                self.problem(f"Dockerfile: stage not FROM debian:12: {s.splitlines()[0]}")
        built = set()
        for m in re.finditer(r"--target\s+((?:[\w.+-]+\s*)+)", build):
            built.update(m.group(1).split())
        copies = {}  # destination -> build-tree relative source
        for m in re.finditer(r"^COPY\s+--from=\w+\s+(\S+)\s+(\S+)", runtime, re.M):
            src, dst = m.group(1), m.group(2)
            copies[dst] = re.sub(r"^/build/", "", src)
        packages = set()
        for m in re.finditer(r"apt-get install ([^&]*)", runtime):
            packages.update(w for w in m.group(1).split() if not w.startswith("-"))
        if not re.search(r"^USER\s+(?!root\b|0\b)\S+", runtime, re.M):
            self.problem("Dockerfile: runtime stage has no non-root USER")
        return built, copies, packages

    # --- checks --------------------------------------------------------------------------------
    def run(self):
        try:
            compose = yaml.safe_load(open(self.compose_path, encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            self.problem(f"{self.compose_path}: cannot load: {e}")
            return
        services = compose.get("services") or {}
        targets = self.cmake_targets()
        built, copies, packages = self.dockerfile()
        self.runtime_packages = packages

        for name in SERVICES:
            if name not in services:
                self.problem(f"service {name}: missing")
        self.check_ha(services)
        for name, svc in services.items():
            env = svc.get("environment")
            # Literal values only (PRESENCED_HA_NAME); ${...} ones are the check's own.
            self.env = {k: str(v) for k, v in env.items()
                        if "$" not in str(v)} if isinstance(env, dict) else {}
            mounts = self.mounts(name, svc)
            if "healthcheck" not in svc:
                self.problem(f"service {name}: no healthcheck")
            argv = svc.get("command") or []
            if isinstance(argv, str):
                self.problem(f"service {name}: command must be a list (exec form)")
                argv = argv.split()
            if argv:
                self.check_binary(name, "command", argv, targets, built, copies, packages, mounts)
            test = (svc.get("healthcheck") or {}).get("test") or []
            if test and test[0] in ("CMD", "CMD-SHELL"):
                if test[0] == "CMD-SHELL":
                    self.problem(f"service {name}: healthcheck CMD-SHELL needs /bin/sh parsing; use CMD")
                else:
                    self.check_binary(name, "healthcheck", test[1:], targets, built, copies,
                                      packages, mounts)
            for dep in (svc.get("depends_on") or {}):
                if dep not in services:
                    self.problem(f"service {name}: depends_on unknown service {dep!r}")

        if PLUGIN_TARGET not in targets:
            self.problem(f"CMake target {PLUGIN_TARGET} does not exist")
        if PLUGIN_TARGET not in built:
            self.problem(f"Dockerfile does not build {PLUGIN_TARGET}")
        self.check_libraries(copies, packages)

    def check_ha(self, services):
        """The ha profile: etcd + two presenced with distinct ha.name, store and host port."""
        for name in HA_SERVICES:
            svc = services.get(name)
            if svc is None:
                self.problem(f"service {name}: missing (profile ha)")
            elif "ha" not in (svc.get("profiles") or []):
                self.problem(f"service {name}: not in profile ha (it would start by default)")
        members = [services.get(n) or {} for n in ("presenced-a", "presenced-b")]
        for what, get in (("PRESENCED_HA_NAME", lambda s: (s.get("environment") or {}).get("PRESENCED_HA_NAME")),
                          ("store volume", lambda s: next((v for v in s.get("volumes") or []
                                                           if str(v).endswith(":/var/lib/presenced")), None)),
                          ("host port", lambda s: tuple(s.get("ports") or ()))):
            values = [get(m) for m in members]
            if None in values or values[0] == values[1]:
                self.problem(f"profile ha: presenced-a and presenced-b need distinct {what}, got {values}")
        for n in ("presenced-a", "presenced-b"):
            deps = (services.get(n) or {}).get("depends_on") or {}
            if "etcd" not in deps:
                self.problem(f"service {n}: does not depend on etcd")
        for name, svc in services.items():
            if "ha" not in (svc.get("profiles") or []):
                for dep in svc.get("depends_on") or {}:
                    if "ha" in ((services.get(dep) or {}).get("profiles") or []):
                        self.problem(f"service {name}: depends on {dep} of profile ha")

    def mounts(self, name, svc):
        mounts = {}
        for v in svc.get("volumes") or []:
            parts = v.split(":") if isinstance(v, str) else [v.get("source"), v.get("target")]
            if len(parts) < 2:
                continue
            src, dst = parts[0], parts[1]
            if src.startswith("./") or src.startswith("/"):
                path = os.path.normpath(os.path.join(self.repo, src))
                if not os.path.exists(path):
                    self.problem(f"service {name}: bind mount source {src} does not exist")
                mounts[dst.rstrip("/")] = path
        return mounts

    def repo_path(self, arg, mounts):
        for dst, src in mounts.items():
            if arg == dst or arg.startswith(dst + "/"):
                return src + arg[len(dst):]
        return None

    def check_binary(self, service, where, argv, targets, built, copies, packages, mounts):
        binary = os.path.basename(argv[0])
        if binary in OURS:
            if binary not in targets:
                self.problem(f"service {service}: {where}: {binary} is not a CMake target")
            if binary not in built:
                self.problem(f"service {service}: {where}: Dockerfile does not build {binary}")
            if not any(os.path.basename(d) == binary and os.path.dirname(d) in
                       ("/usr/local/bin", "/usr/bin") for d in copies):
                self.problem(f"service {service}: {where}: Dockerfile does not copy {binary} to PATH")
            self.check_flags(service, binary, argv[1:])
        elif binary in SYSTEM:
            pkg = SYSTEM[binary]
            if pkg and pkg not in packages:
                self.problem(f"service {service}: {where}: {binary} needs Debian package {pkg}, "
                             "not installed by the Dockerfile runtime stage")
        else:
            self.problem(f"service {service}: {where}: unknown binary {binary!r}")
            return
        # File arguments under a bind mount must exist in the repo.
        for a in argv[1:]:
            p = self.repo_path(a, mounts)
            if p is not None and not os.path.exists(p):
                self.problem(f"service {service}: {where}: {a} (from {os.path.relpath(p, self.repo)}) "
                             "does not exist")
        if binary == "mosquitto" and "-c" in argv:
            conf = self.repo_path(argv[argv.index("-c") + 1], mounts)
            if conf and os.path.exists(conf):
                self.check_mosquitto_conf(conf, copies)
        if binary == "presenced" and "--config" in argv:
            conf = self.repo_path(argv[argv.index("--config") + 1], mounts)
            if conf and os.path.exists(conf):
                self.run_ours("presenced", ["--check-config", conf], "presenced --check-config")
        if binary == "presence-sim":
            args = []
            for a in argv[1:]:
                p = self.repo_path(a, mounts)
                args.append(p if p else a)
            if "--out" in args:
                args[args.index("--out") + 1] = "-"
            self.run_ours("presence-sim", args + ["--check"], "presence-sim --check")

    def built_binary(self, name):
        path = os.path.join(self.build, OURS[name])
        return path if os.access(path, os.X_OK) else None

    def check_flags(self, service, binary, args):
        path = self.built_binary(binary)
        if not path:
            print(f"note: {binary} not built; its flags not checked")
            return
        r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
        usage = (r.stdout + r.stderr).replace("_", "-")
        for a in args:
            if a.startswith("--"):
                flag = a.split("=")[0]
                if not re.search(re.escape(flag) + r"(?![\w-])", usage):
                    self.problem(f"service {service}: {binary} has no flag {flag}")

    def run_ours(self, binary, args, what):
        path = self.built_binary(binary)
        if not path:
            print(f"note: {binary} not built; {what} skipped")
            return
        env = dict(os.environ, PRESENCED_HTTP_TOKEN="check-token", WEBHOOK_SECRET="check-secret")
        env.update(getattr(self, "env", {}))  # the service's own environment (PRESENCED_HA_NAME)
        r = subprocess.run([path] + args, capture_output=True, text=True, timeout=30, env=env)
        if r.returncode != 0:
            self.problem(f"{what} failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()}")
        else:
            print(f"ok: {what}")

    def check_mosquitto_conf(self, conf, copies):
        documented = set(re.findall(r"^\| `(\w+)` \|",
                                    open(os.path.join(self.repo, "docs/broker-ext.md"),
                                         encoding="utf-8").read(), re.M))
        plugins = []
        for n, line in enumerate(open(conf, encoding="utf-8"), 1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if words[0] == "plugin":
                plugins.append(words[1])
            elif words[0].startswith("plugin_opt_") and words[0][len("plugin_opt_"):] not in documented:
                self.problem(f"{os.path.relpath(conf, self.repo)}:{n}: {words[0]} is not an option "
                             "in docs/broker-ext.md")
        if not plugins:
            self.problem(f"{os.path.relpath(conf, self.repo)}: loads no plugin (broker-ext)")
        for p in plugins:
            if copies.get(p) != PLUGIN_BUILD_PATH:
                self.problem(f"{os.path.relpath(conf, self.repo)}: plugin {p} is not installed there "
                             f"by the Dockerfile (it copies {PLUGIN_BUILD_PATH} to "
                             f"{[d for d, s in copies.items() if s == PLUGIN_BUILD_PATH]})")

    def check_libraries(self, copies, packages):
        """Every shared library our built binaries need comes from a runtime-stage package."""
        if not shutil.which("ldd") or not shutil.which("dpkg"):
            print("note: ldd/dpkg missing; runtime library check skipped")
            return
        files = [os.path.join(self.build, s) for s in copies.values()]
        files = [f for f in files if os.path.exists(f)]
        if not files:
            print("note: nothing built; runtime library check skipped")
            return
        libs = set()
        for f in files:
            out = subprocess.run(["ldd", f], capture_output=True, text=True).stdout
            libs.update(re.findall(r"=>\s+(/\S+)", out))
        for lib in sorted(libs):
            r = subprocess.run(["dpkg", "-S", os.path.realpath(lib)], capture_output=True, text=True)
            if r.returncode != 0:
                r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
            if r.returncode != 0:
                self.problem(f"runtime library {lib} belongs to no Debian package")
                continue
            pkg = r.stdout.split(":")[0].strip()
            if pkg not in packages and pkg not in BASE_PACKAGES:
                # Transitive dependencies of a listed package are installed by apt as well.
                if not self.depends(packages, pkg):
                    self.problem(f"runtime library {lib} ({pkg}) is not installed by the Dockerfile "
                                 "runtime stage")
        print(f"ok: {len(libs)} shared libraries checked against the runtime packages")

    _closure = None

    def depends(self, packages, dep):
        """dep is installed by apt as a dependency of one of packages (one apt-cache call)."""
        if self._closure is None:
            r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                                "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                                "--no-enhances"] + sorted(packages), capture_output=True, text=True)
            self._closure = set(re.findall(r"^\s+(?:Pre)?Depends:\s+<?([\w.+-]+?)(?::\w+)?>?$",
                                           r.stdout, re.M))
        return dep in self._closure

    def docker_compose(self, expect_token_guard):
        tool = shutil.which("docker-compose")
        if not tool:
            print("note: docker-compose not installed; `config -q` skipped")
            return
        base = [tool, "--project-directory", self.repo, "-f", self.compose_path, "config", "-q"]
        env = dict(os.environ, PRESENCED_HTTP_TOKEN="check-token")
        r = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            self.problem(f"docker-compose config -q: {(r.stdout + r.stderr).strip()}")
        else:
            print("ok: docker-compose config -q")
        if not expect_token_guard:
            return
        # The ha profile resolves as well, and pulls in exactly the pair's stack.
        r = subprocess.run([tool, "--project-directory", self.repo, "-f", self.compose_path,
                            "--profile", "ha", "config", "--services"],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            self.problem(f"docker-compose --profile ha config: {(r.stdout + r.stderr).strip()}")
        else:
            missing = set(HA_SERVICES) - set(r.stdout.split())
            if missing:
                self.problem(f"docker-compose --profile ha config: missing {sorted(missing)}")
            else:
                print("ok: docker-compose --profile ha config")
        if expect_token_guard:
            env.pop("PRESENCED_HTTP_TOKEN")
            r = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
            if r.returncode == 0:
                self.problem("docker-compose config accepts the file without PRESENCED_HTTP_TOKEN "
                             "(the API would listen without a token)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--expect-failures")
    a = ap.parse_args()
    a.repo, a.build = os.path.abspath(a.repo), os.path.abspath(a.build)
    compose = a.expect_failures or os.path.join(a.repo, "compose.yaml")
    c = Checker(a.repo, a.build, compose)
    c.run()
    c.docker_compose(expect_token_guard=not a.expect_failures)
    for p in c.problems:
        print("problem:", p)
    if a.expect_failures:
        expected = re.findall(r"^# expect: (.+)$", open(compose, encoding="utf-8").read(), re.M)
        missing = [e for e in expected if not any(e in p for p in c.problems)]
        for e in missing:
            print("NOT DETECTED:", e)
        return 1 if missing or not expected else 0
    return 1 if c.problems else 0


if __name__ == "__main__":
    sys.exit(main())
