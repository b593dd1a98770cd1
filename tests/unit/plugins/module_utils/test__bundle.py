"""plugins/module_utils/_bundle.py: the one import builders outside Ansible use (tests/lab/build)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from ansible_collections.kubelab.kubeadm.plugins.module_utils import (
    _bundle,
    _bundle_files,
    _bundle_manifest,
    _bundle_sign,
    _bundle_tarball,
    _bundle_trust,
    _bundle_verify,
    _bundle_write,
)

_spec = importlib.util.spec_from_file_location("bundle_builder", Path(__file__).with_name("bundle_builder.py"))
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)

FACADE = Path(_bundle.__file__)
PIECES = (_bundle_files, _bundle_manifest, _bundle_tarball, _bundle_verify, _bundle_write, _bundle_sign, _bundle_trust)


def test_the_facade_exports_the_pieces_own_objects():
    for name in _bundle.__all__:
        homes = [piece for piece in PIECES if name in vars(piece) and vars(piece)[name] is getattr(_bundle, name)]
        assert homes, name
    # what docs/bundle.md and tests/lab/build/bundle_manifest.py call
    for name in ("write_manifest", "verify_bundle", "unlisted_files", "image_archive_path", "read_docker_archive"):
        assert name in _bundle.__all__


def test_loaded_by_path_it_loads_the_pieces_next_to_it(monkeypatch, bundle):
    """Without the package (the pieces not imported yet), the pieces are registered from their files;
    one already imported is kept."""
    command = sys.modules[f"{_bundle._PACKAGE}._command"]
    for piece in _bundle._PIECES[1:]:
        monkeypatch.delitem(sys.modules, f"{_bundle._PACKAGE}.{piece}", raising=False)
    spec = importlib.util.spec_from_file_location("kubelab_bundle", FACADE)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    assert Path(sys.modules[f"{_bundle._PACKAGE}._bundle_write"].__file__) == FACADE.with_name("_bundle_write.py")
    assert loaded.verify_bundle(str(bundle))["verified_files"] == 9
    assert loaded.write_manifest is not _bundle.write_manifest  # fresh copies, not the package's
    assert sys.modules[f"{_bundle._PACKAGE}._command"] is command


def test_a_builder_outside_ansible_loads_it_by_path(bundle, tmp_path):
    """As tests/lab/build does: a python that cannot import the collection, the file loaded by path."""
    script = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("kubelab_bundle", sys.argv[1])
bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bundle)
try:
    import ansible_collections.kubelab.kubeadm  # noqa: F401
    importable = True
except ImportError:
    importable = False
meta = json.loads(sys.argv[3])
result = bundle.write_manifest(sys.argv[2], meta, json.loads(sys.argv[4]), created="2026-01-01T00:00:00Z")
verified = bundle.verify_bundle(sys.argv[2], kubernetes_version="1.36.3", architecture="amd64")
try:
    bundle.verify_bundle(sys.argv[2] + "-missing")
except bundle.BundleError as exc:
    error = exc.headline
print(json.dumps({"importable": importable, "changed": result["changed"], "verified": verified["verified_files"],
                  "unlisted": bundle.unlisted_files(sys.argv[2], verified["manifest"]), "error": error}))
"""
    proc = subprocess.run(
        [sys.executable, "-I", "-c", script, str(FACADE), str(bundle), json.dumps(bb.META), json.dumps(bb.IMAGES)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["importable"] is False
    assert (out["changed"], out["verified"], out["unlisted"]) == (True, 9, [])
    assert "does not exist: build it with playbooks/bundle.yml" in out["error"]
