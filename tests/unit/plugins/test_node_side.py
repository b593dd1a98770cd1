"""What each module ships to the node, and that the node-side code runs on Python 3.8.

Ansible sends a module together with every module_utils file it imports (recursively) to the host
that runs it. The modules in NODE_MODULES run on the nodes (roles/, playbooks/nodes.yml, the
control-plane host by delegation) whose Python may be as old as 3.8 (ansible-core 2.19's oldest
target); bundle_verify and bundle_manifest run on the controller (delegate_to: localhost,
playbooks/bundle.yml). `ansible-test sanity --python 3.11` compiles for 3.11 only, hence this test.
"""

from __future__ import annotations

import ast
import glob
import os
import subprocess
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
COLLECTIONS = Path(__file__).resolve().parents[3] / "build" / "collections"
PREFIX = "ansible_collections.kubelab.kubeadm.plugins.module_utils."
# bundle_verify and bundle_manifest share the signature layer (_bundle_trust), which needs both sides.
_CONTROLLER_BUNDLE = {
    "_command",
    "_bundle_files",
    "_bundle_manifest",
    "_bundle_tarball",
    "_bundle_verify",
    "_bundle_write",
    "_bundle_sign",
    "_bundle_trust",
}
SHIPPED = {
    # node side
    "docker_image_preload": {"_command", "_docker_images", "_bundle_files"},
    "bundle_signature": {"_command", "_bundle_files", "_bundle_sign"},
    "kubeadm_token": {"_command", "_kubeadm", "_token", "_token_ensure"},
    "kubeadm_token_info": {"_command", "_kubeadm", "_token"},
    "kubeadm_join_info": {"_command", "_kubeadm", "_pki"},
    "kubeadm_images_info": {"_command", "_kubeadm", "_images"},
    "listening_ports": {"_proc_net"},
    "install_files": {"_command", "_bundle_files"},
    "node_info": {"_proc_net"},
    "systemd_units": set(),
    "kubeadm_cluster_info": {"_command", "_kubeadm", "_pki", "_cluster_info"},
    # controller side
    "bundle_verify": _CONTROLLER_BUNDLE,
    "bundle_manifest": _CONTROLLER_BUNDLE,
}
NODE_MODULES = (
    "docker_image_preload",
    "bundle_signature",
    "kubeadm_token",
    "kubeadm_token_info",
    "kubeadm_join_info",
    "kubeadm_images_info",
    "listening_ports",
    "kubeadm_cluster_info",
    "install_files",
    "node_info",
    "systemd_units",
)


def imported_module_utils(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PREFIX):
            names.add(node.module[len(PREFIX) :])
    return names


def shipped(module: str) -> set[str]:
    """The module_utils a module pulls in, as Ansible's module_utils finder follows the imports."""
    todo = imported_module_utils(PLUGINS / "modules" / f"{module}.py")
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo |= imported_module_utils(PLUGINS / "module_utils" / f"{name}.py")
    return found


def test_every_module_is_listed():
    assert set(SHIPPED) == {p.stem for p in (PLUGINS / "modules").glob("*.py") if p.stem != "__init__"}


@pytest.mark.parametrize("module", sorted(SHIPPED))
def test_each_module_ships_only_the_pieces_it_needs(module):
    assert shipped(module) == SHIPPED[module]


def node_side_files() -> list[Path]:
    utils = set().union(*(SHIPPED[m] for m in NODE_MODULES))
    files = [PLUGINS / "modules" / f"{m}.py" for m in NODE_MODULES]
    return files + [PLUGINS / "module_utils" / f"{name}.py" for name in sorted(utils)]


@pytest.mark.parametrize("path", node_side_files(), ids=lambda p: p.name)
def test_node_side_code_is_python_3_8_syntax(path):
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 8))


def python38() -> str | None:
    candidates = [os.environ.get("KUBELAB_PYTHON38", ""), "python3.8"]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.8*/bin/python3.8")))
    for candidate in filter(None, candidates):
        try:
            proc = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
        except OSError:
            continue
        if proc.returncode == 0 and proc.stdout.strip() == "(3, 8)":
            return candidate
    return None


PYTHON38 = python38()

# Runs the node-side logic under Python 3.8 without Ansible: a stub module runs the docker CLI.
SMOKE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.kubelab.kubeadm.plugins.module_utils import (
    _bundle_files, _command, _docker_images, _images, _kubeadm, _pki, _token)

archive, ref = sys.argv[2], sys.argv[3]
content = _bundle_files.read_docker_archive(archive)
assert content["repo_tags"] == [ref], content
image = {"ref": ref, "id": content["config_digest"], "config_digest": content["config_digest"],
         "archive": archive, "sha256": _bundle_files.sha256_file(archive), "size": 1}

class Module:
    check_mode, _diff, images = False, True, {}
    params = {"images": [image], "files": [], "archive_dir": None, "load": True, "cache_dir": None,
              "min_free_mib": 0, "docker_path": "/usr/bin/docker"}
    def run_command(self, cmd, environ_update=None):
        if cmd[1] == "info":
            return 0, "/\n", ""
        if cmd[1] == "load":
            self.images[ref] = content["config_digest"]
            return 0, "Loaded image: " + ref, ""
        if cmd[-1] in self.images:
            return 0, self.images[cmd[-1]] + "\n", ""
        return 1, "", "Error: No such image: " + cmd[-1]

result = _docker_images.image_preload(Module())
assert result["loaded"] == [ref] and result["changed"], result
runner = _command.CommandRunner(Module(), "/usr/bin/docker")
try:
    runner.run(["image", "inspect", "nope:1"], action="inspecting nope:1")
except _command.ModuleError as exc:
    assert exc.details["rc"] == 1 and "No such image" in exc.msg, exc.msg
tokens = _token.parse_token_list(open(sys.argv[4]).read())
assert tokens and tokens[0]["expires"].tzinfo is not None
assert _images.parse_images(open(sys.argv[5]).read())
print("ok", sys.version_info[:2])
"""


@pytest.mark.skipif(PYTHON38 is None, reason="no Python 3.8 here (set KUBELAB_PYTHON38 to one)")
def test_node_side_code_runs_on_python_3_8():
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "kubeadm"
    archive = Path(__file__).parent / "module_utils" / "fixtures" / "docker-save-20.10-hello.tar"
    assert (COLLECTIONS / "ansible_collections" / "kubelab" / "kubeadm").exists()  # made by tests/unit/conftest.py
    args = [str(COLLECTIONS), str(archive), "kubelab.invalid/fixture/hello:1.0"]
    args += [str(fixtures / "token_list_v1alpha3.json"), str(fixtures / "images_v1.36.3.json")]
    proc = subprocess.run([PYTHON38, "-I", "-c", SMOKE, *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok (3, 8)"
    compile_all = "import sys\nfor path in sys.argv[1:]:\n    compile(open(path).read(), path, 'exec')\n"
    files = [str(p) for p in node_side_files()]
    compiled = subprocess.run([PYTHON38, "-I", "-c", compile_all, *files], capture_output=True, text=True, check=False)
    assert compiled.returncode == 0, compiled.stderr
