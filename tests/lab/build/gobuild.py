# SPDX-License-Identifier: GPL-3.0-or-later
"""The one code path that builds every Go component of components.py.

A component is skipped when its content key matches: the resolved `go build` command lines,
the wrapper go.mod, the upstream go.mod, the Go version, the component's checks and files,
this file. Otherwise its wrapper module is tidied (only when the wrapper go.mod changed) and
built; Go's own build cache makes an unchanged package cost nothing but the link.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from buildlib import (
    T_GO_BUILD,
    T_MODULE,
    T_QUICK,
    BuildError,
    Outcome,
    det_tgz,
    expect,
    fresh_dir,
    key,
    log,
    promote,
    read_key,
    require_static,
    run,
    sha256,
    tree_sha,
)
from components import HERE, Check, Component, Go, Module

SELF_SHA = sha256(Path(__file__))
STAGING = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/src/\S+\s*$", re.M)
LOCAL_REPLACE = re.compile(r"=>\s*\.\.?/")


@dataclass
class GoEnv:
    """The go command's environment: the local toolchain, module mode that may update the wrapper's
    go.mod/go.sum, the configured proxy without a ",direct" (nothing but the proxy is reachable)."""

    work: Path
    jobs: int
    force: bool
    env: dict[str, str] = field(default_factory=dict)
    version: str = ""
    modules: dict[str, Module] = field(default_factory=dict)

    @classmethod
    def create(cls, work: Path, jobs: int, force: bool) -> GoEnv:
        proxy = os.environ.get("GOPROXY") or go_env_value("GOPROXY")
        stripped = re.sub(r"[,|](direct|off)$", "", proxy)
        if stripped in ("", "direct", "off"):
            raise BuildError(f"GOPROXY is '{proxy}'; set GOPROXY to a module proxy (e.g. https://proxy.golang.org)")
        env = dict(os.environ, GOPROXY=stripped, GOFLAGS="-mod=mod", CGO_ENABLED="0")
        env["GOTOOLCHAIN"] = os.environ.get("KUBELAB_GOTOOLCHAIN", "local")
        self = cls(work, jobs, force, env)
        self.version = go_env_value("GOVERSION", env)
        return self

    def module(self, path: str, version: str) -> Module:
        """go mod download -json (downloads if needed), merged with the module's .info."""
        ref = f"{path}@{version}"
        if ref not in self.modules:
            out = run(["go", "mod", "download", "-json", ref], cwd=self.work, env={**self.env, "GOFLAGS": ""},
                      capture=True, check=False, timeout=T_MODULE)
            try:
                data = json.loads(out[out.index("{") :])
            except ValueError:
                raise BuildError(f"go mod download {ref}: no JSON answer (see the log)") from None
            if data.get("Error"):
                raise BuildError(f"{ref} is not available from {self.env['GOPROXY']}: {data['Error']}")
            info = json.loads(Path(data["Info"]).read_text(encoding="utf-8"))
            origin = data.get("Origin") or info.get("Origin") or {}
            self.modules[ref] = Module(
                path, version, Path(data["Dir"]), Path(data["GoMod"]), origin.get("Hash", ""),
                data.get("Time") or info.get("Time", ""),
            )
        return self.modules[ref]


def go_env_value(name: str, env: dict[str, str] | None = None) -> str:
    return run(["go", "env", name], capture=True, env=env, timeout=T_QUICK).strip()


def go_line(text: str) -> str:
    m = re.search(r"^go\s+(\S+)", text, re.M)
    if not m:
        raise BuildError("the module's go.mod has no go line")
    return m.group(1)


def upstream_replaces(c: Component, text: str) -> list[str]:
    """The replace directives of the upstream go.mod that the wrapper takes over."""
    lines = []
    if c.wrapper == "staging":
        staging = "v0." + c.version.removeprefix("v1.")
        lines = [f"{mod} => {mod} {staging}" for mod in STAGING.findall(text)]
        text = STAGING.sub("", text)
    body = [line for block in re.findall(r"^replace \($(.*?)^\)", text, re.M | re.S) for line in block.splitlines()]
    body += re.findall(r"^replace ([^(\s].*)$", text, re.M)
    body = [line.split("//")[0].strip() for line in body if line.split("//")[0].strip()]
    local = [line for line in body if LOCAL_REPLACE.search(line)]
    if local:
        raise BuildError(f"{c.module}@{c.version} has local-path replaces the wrapper cannot use: {local}")
    return lines + body


def wrapper_gomod(c: Component, module: Module, packages: list[str]) -> str:
    upstream = module.gomod.read_text(encoding="utf-8")
    name = "k8s" if c.wrapper == "staging" else c.name
    replaces = (upstream_replaces(c, upstream) if c.wrapper != "plain" else []) + list(c.replaces)
    requires = [f"{c.module} {c.version}", *c.requires]
    parts = [f"module local.build/{name}", f"go {c.go or go_line(upstream)}"]
    parts.append("require (\n" + "".join(f"\t{r}\n" for r in requires) + ")")
    if replaces:
        parts.append("replace (\n" + "".join(f"\t{r}\n" for r in replaces) + ")")
    parts.append("tool (\n" + "".join(f"\t{p}\n" for p in sorted(packages)) + ")")
    return "\n\n".join(parts) + "\n"


def tidy(d: Path, gomod: str, env: dict[str, str], force: bool) -> None:
    """`go mod tidy` when the wrapper go.mod changed since the last tidy (go.sum is kept)."""
    (d / "go.mod.gen").write_text(gomod, encoding="utf-8")
    marker = d / ".tidy"
    if not force and (d / "go.sum").exists() and read_key(marker) == key(gomod):
        return
    (d / "go.mod").write_text(gomod, encoding="utf-8")
    try:
        run(["go", "mod", "tidy"], cwd=d, env=env, timeout=T_MODULE)
    except BuildError:
        # some graphs cannot be tidied only because of *tests* of dependencies (cri-dockerd: an
        # ambiguous import under grpc/interop); tidy -e keeps what the build needs and `go build`
        # still fails on a real gap
        log().write("go mod tidy failed; retrying with -e (errors in dependency tests only)")
        (d / "go.mod").write_text(gomod, encoding="utf-8")
        run(["go", "mod", "tidy", "-e"], cwd=d, env=env, timeout=T_MODULE)
    marker.write_text(key(gomod), encoding="utf-8")


def binary_name(package: str) -> str:
    parts = package.split("/")
    return parts[-2] if re.fullmatch(r"v[0-9]+", parts[-1]) and len(parts) > 1 else parts[-1]


def go_build_argv(build: Go, module: Module, packages: list[str], jobs: int, out_dir: Path) -> list[str]:
    out = f"{out_dir}/{build.output}" if build.output else f"{out_dir}/"
    return ["go", "build", "-p", str(jobs), "-trimpath", *build.flags, "-ldflags", build.ldflags(module), "-o", out,
            *packages]


def outputs(c: Component, packages: dict[int, list[str]]) -> list[str]:
    renames = dict(c.renames)
    names = []
    for i, build in enumerate(c.builds):
        for name in [build.output] if build.output else [binary_name(p) for p in packages[i]]:
            names.append(renames.get(name, name))
    return names


def run_checks(checks: tuple[Check, ...], bindir: Path, what: str) -> None:
    for check in checks:
        env = {**os.environ, **dict(check.env)} if check.env else None
        expect(f"{what} {check.argv[0]}", check.pattern, [bindir / check.argv[0], *check.argv[1:]], env=env)


def build(c: Component, go: GoEnv) -> Outcome:
    """Build component c into work/<name>/bin (and its archive), unless its key is unchanged."""
    d = go.work / c.name
    d.mkdir(parents=True, exist_ok=True)
    if c.wrapper == "source":
        src = HERE / c.source
        module = Module(c.module, c.version)
        upstream, source = "", tree_sha(src)
    else:
        module = go.module(c.module, c.version)
        upstream, source = sha256(module.gomod), ""
    packages = {i: list(b.packages(module) if callable(b.packages) else b.packages) for i, b in enumerate(c.builds)}
    gomod = "" if c.wrapper == "source" else wrapper_gomod(c, module, [p for ps in packages.values() for p in ps])
    names = outputs(c, packages)
    argvs = [go_build_argv(b, module, packages[i], 0, Path("bin.new")) for i, b in enumerate(c.builds)]
    k = key(argvs, [b.cgo for b in c.builds], gomod, upstream, source, go.version, go.env["GOTOOLCHAIN"],
            c.renames, c.files, c.archive, c.checks, SELF_SHA)
    done = [d / "bin" / n for n in names + [f[1] for f in c.files]] + ([d / c.archive.file] if c.archive else [])
    note = f"{c.module}@{c.version}: {', '.join(names) if len(names) < 5 else f'{len(names)} binaries'}"
    if not go.force and read_key(d / "key") == k and all(p.exists() for p in done):
        return Outcome("cached", note)
    (d / "key").unlink(missing_ok=True)
    if c.wrapper == "source":
        cwd = d / "src"
        shutil.rmtree(cwd, ignore_errors=True)
        shutil.copytree(src, cwd)
    else:
        cwd = d
        tidy(d, gomod, go.env, go.force)
    new = fresh_dir(d / "bin.new")
    for i, b in enumerate(c.builds):
        env = {**go.env, "CGO_ENABLED": "1"} if b.cgo else go.env
        argv = go_build_argv(b, module, packages[i], go.jobs, new)
        run(argv, cwd=cwd, env=env, timeout=T_GO_BUILD, what=f"go build of {c.name}")
    for old, name in c.renames:
        (new / old).rename(new / name)
    require_static([new / n for n in names])
    run_checks(c.checks, new, c.name)
    for rel, name in c.files:
        if not (module.dir / rel).is_file():
            raise BuildError(f"{c.module}@{c.version} has no {rel}")
        shutil.copyfile(module.dir / rel, new / name)
        (new / name).chmod(0o644)
    if c.archive:
        pack(c, new, names, d)
    promote(new, d / "bin")
    (d / "key").write_text(k, encoding="utf-8")
    commit = f", commit {module.commit[:12]}" if module.commit else ""
    return Outcome("built", note + commit)


def pack(c: Component, new: Path, names: list[str], d: Path) -> None:
    """The component's bundle archive (reproducible tgz) of its binaries."""
    a = c.archive
    if a.subdir:
        stage = fresh_dir(d / "pkg")
        (stage / a.subdir).mkdir()
        for name in names:
            shutil.copy2(new / name, stage / a.subdir / name)
        det_tgz(d / a.file, stage, [a.subdir])
    else:
        det_tgz(d / a.file, new, sorted(("./" if a.dot else "") + n for n in names))
