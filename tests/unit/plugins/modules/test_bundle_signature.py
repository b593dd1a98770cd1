"""The signed bundle: bundle_verify refuses what no trusted key vouches for, bundle_manifest signs,
bundle_signature verifies the node's copy. Real ssh-keygen, keys made in tmp_path."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_sign import allowed_signers
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_write import write_manifest
from ansible_collections.kubelab.kubeadm.plugins.modules import bundle_manifest, bundle_signature, bundle_verify

from ..conftest import make_key

_spec = importlib.util.spec_from_file_location(
    "bundle_builder", Path(__file__).resolve().parents[1] / "module_utils" / "bundle_builder.py"
)
bb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bb)


@pytest.fixture
def warnings(monkeypatch):
    """The module warnings of a run (module.warn)."""
    found: list[str] = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, text: found.append(text))
    return found


def pub(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text().strip()


def test_signed_bundle_is_verified_and_names_its_signer(run_module, bundle, trusted_keys, signing_key):
    result, failed = run_module(bundle_verify.main, {"path": str(bundle), "trusted_keys": trusted_keys})
    assert not failed, result
    assert result["signature"] == "verified"
    assert result["signed_by"] == "builder@test"
    assert result["fingerprint"].startswith("SHA256:")
    assert result["signature_path"] == str(bundle / "manifest.json.sig")
    assert result["unlisted_files"] == []
    assert 'kubelab-bundle namespaces="kubelab-bundle" ssh-ed25519 ' in result["allowed_signers"]
    assert len(result["manifest_sha256"]) == 64


def test_unsigned_bundle_is_refused(run_module, bundle, trusted_keys):
    (bundle / "manifest.json.sig").unlink()
    result, failed = run_module(bundle_verify.main, {"path": str(bundle), "trusted_keys": trusted_keys})
    assert failed
    assert "manifest.json.sig is missing, the bundle is unsigned" in result["msg"]
    assert "bundle_signing_key" in result["msg"] and "cluster_bundle_allow_unsigned" in result["msg"]


def test_no_trusted_key_is_refused(run_module, bundle):
    result, failed = run_module(bundle_verify.main, {"path": str(bundle)})
    assert failed
    assert "no trusted signing key is given" in result["msg"]
    assert "cluster_bundle_trusted_keys" in result["msg"]


def test_bundle_signed_by_another_key_is_refused_naming_that_key(run_module, bundle, tmp_path):
    other = make_key(tmp_path / "other", "stranger")
    result, failed = run_module(bundle_verify.main, {"path": str(bundle), "trusted_keys": [pub(other)]})
    assert failed
    assert "is a valid signature by key SHA256:" in result["msg"]
    assert "which is not trusted" in result["msg"]


def test_regenerated_manifest_attack_is_refused(run_module, bundle, trusted_keys, tmp_path):
    """bin/kubeadm replaced in a copy, manifest.json + SHA256SUMS regenerated with the collection's own writer:
    every file matches the new manifest, but the builder's signature does not."""
    copy = tmp_path / "attacked"
    shutil.copytree(bundle, copy)
    (copy / "bin/kubeadm").write_bytes(b"#!/bin/sh\necho owned\n")
    write_manifest(str(copy), bb.META, bb.IMAGES)
    assert (copy / "manifest.json").read_bytes() != (bundle / "manifest.json").read_bytes()
    # without the signature check this bundle verifies: prove the attack is real
    result, failed = run_module(bundle_verify.main, {"path": str(copy), "allow_unsigned": True})
    assert not failed and result["verified_files"] == 9, result
    result, failed = run_module(bundle_verify.main, {"path": str(copy), "trusted_keys": trusted_keys})
    assert failed
    assert "manifest.json.sig does not match manifest.json" in result["msg"]
    assert "changed after it was signed" in result["msg"]
    assert "incorrect signature" in result["msg"]


def test_allow_unsigned_passes_with_a_warning_every_run(run_module, bundle, warnings):
    (bundle / "manifest.json.sig").unlink()
    for _run in range(2):
        result, failed = run_module(bundle_verify.main, {"path": str(bundle), "allow_unsigned": True})
        assert not failed, result
        assert result["signature"] == "unsigned"
    assert len(warnings) == 2
    assert "not verified (unsigned), accepted because allow_unsigned" in warnings[0]


def test_allow_unsigned_with_a_bad_signature_warns_invalid(run_module, bundle, trusted_keys, tmp_path, warnings):
    other = make_key(tmp_path / "other", "stranger")
    args = {"path": str(bundle), "trusted_keys": [pub(other)], "allow_unsigned": True}
    result, failed = run_module(bundle_verify.main, args)
    assert not failed, result
    assert result["signature"] == "invalid"
    assert "not trusted" in warnings[0]


def test_check_mode_verifies_the_signature_too(run_module, bundle, trusted_keys):
    (bundle / "manifest.json.sig").write_text("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n")
    result, failed = run_module(
        bundle_verify.main, {"path": str(bundle), "trusted_keys": trusted_keys}, check_mode=True
    )
    assert failed
    assert "does not match manifest.json" in result["msg"]


def test_a_bad_trusted_key_line_is_refused(run_module, bundle):
    result, failed = run_module(bundle_verify.main, {"path": str(bundle), "trusted_keys": ["ssh-ed25519 bm90IGEga2V5"]})
    assert failed
    assert "is not a ssh-ed25519 key" in result["msg"]
    result, failed = run_module(bundle_verify.main, {"path": str(bundle), "trusted_keys": ["builder@host"]})
    assert failed
    assert "is not an OpenSSH public key line" in result["msg"]


def test_signed_tarball_verified_in_place_and_unpacked(run_module, bundle, trusted_keys, tmp_path):
    tarball = bb.tar_bundle(bundle, tmp_path / "b.tar.gz")
    result, failed = run_module(bundle_verify.main, {"path": str(tarball), "trusted_keys": trusted_keys})
    assert not failed, result
    assert result["signature"] == "verified"
    dest = tmp_path / "unpacked"
    result, failed = run_module(
        bundle_verify.main, {"path": str(tarball), "trusted_keys": trusted_keys, "unpack_dir": str(dest)}
    )
    assert not failed, result
    assert (dest / "manifest.json.sig").is_file()
    assert result["signature_path"] == str(dest / "manifest.json.sig")


def test_unsigned_tarball_is_refused_before_unpacking(run_module, bundle, trusted_keys, tmp_path):
    (bundle / "manifest.json.sig").unlink()
    tarball = bb.tar_bundle(bundle, tmp_path / "b.tar.gz")
    dest = tmp_path / "unpacked"
    result, failed = run_module(
        bundle_verify.main, {"path": str(tarball), "trusted_keys": trusted_keys, "unpack_dir": str(dest)}
    )
    assert failed
    assert "unsigned" in result["msg"]
    assert not dest.exists()


# --------------------------------------------------------------------------- bundle_manifest signs


def manifest_args(root: Path, **extra) -> dict:
    return {
        "path": str(root),
        "kubernetes_version": "1.36.3",
        "architecture": "amd64",
        "versions": {"docker": "29.7.2", "cri_dockerd": "0.4.3"},
        "images": [{"ref": bb.IMAGE_REF, "group": "kubeadm", "id": bb.IMAGE_ID}],
        **extra,
    }


def test_bundle_manifest_signs_once_and_then_reports_no_change(run_module, tmp_path, signing_key, trusted_keys):
    root = bb.make_bundle(tmp_path / "bundle")
    args = manifest_args(root, signing_key=str(signing_key))
    result, failed = run_module(bundle_manifest.main, args, check_mode=True)
    assert not failed and result["changed"] is True, result
    assert not (root / "manifest.json.sig").exists()
    result, failed = run_module(bundle_manifest.main, args)
    assert not failed and result["changed"] is True and result["signed"] is True, result
    signature = (root / "manifest.json.sig").read_bytes()
    for check_mode in (True, False):
        result, failed = run_module(bundle_manifest.main, args, check_mode=check_mode)
        assert not failed and result["changed"] is False, result
    assert (root / "manifest.json.sig").read_bytes() == signature
    verified, failed = run_module(bundle_verify.main, {"path": str(root), "trusted_keys": trusted_keys})
    assert not failed and verified["fingerprint"] == result["fingerprint"], verified


def test_bundle_manifest_re_signs_when_a_file_changes(run_module, tmp_path, signing_key, trusted_keys):
    root = bb.make_bundle(tmp_path / "bundle")
    args = manifest_args(root, signing_key=str(signing_key))
    run_module(bundle_manifest.main, args)
    (root / "bin/kubeadm").write_bytes(b"a newer kubeadm")
    result, failed = run_module(bundle_manifest.main, args)
    assert not failed and result["changed"] is True, result
    result, failed = run_module(bundle_verify.main, {"path": str(root), "trusted_keys": trusted_keys})
    assert not failed, result


def test_bundle_manifest_refuses_to_build_unsigned_unless_asked(run_module, tmp_path, signing_key, warnings):
    root = bb.make_bundle(tmp_path / "bundle")
    result, failed = run_module(bundle_manifest.main, manifest_args(root))
    assert failed
    assert "no signing key" in result["msg"] and "allow_unsigned" in result["msg"]
    assert not (root / "manifest.json").exists()
    result, failed = run_module(bundle_manifest.main, manifest_args(root, signing_key=str(tmp_path / "nokey")))
    assert failed
    assert "does not exist" in result["msg"]
    assert not (root / "manifest.json").exists()
    # signed, then a file changes and the bundle is rewritten unsigned: the stale signature goes
    run_module(bundle_manifest.main, manifest_args(root, signing_key=str(signing_key)))
    (root / "bin/kubeadm").write_bytes(b"another kubeadm")
    result, failed = run_module(bundle_manifest.main, manifest_args(root, allow_unsigned=True))
    assert not failed and result["changed"] is True and result["signed"] is False, result
    assert not (root / "manifest.json.sig").exists()
    assert "not signed" in warnings[0]


# --------------------------------------------------------------------------- bundle_signature on the node


@pytest.fixture
def node_copy(bundle, trusted_keys, tmp_path):
    """What nodes.yml copies to a node: manifest.json, its signature, the allowed-signers file."""
    node = tmp_path / "node"
    node.mkdir()
    shutil.copy(bundle / "manifest.json", node / "manifest.json")
    shutil.copy(bundle / "manifest.json.sig", node / "manifest.json.sig")
    (node / "allowed_signers").write_text(allowed_signers(trusted_keys))
    return node


def node_args(node: Path, **extra) -> dict:
    return {"manifest": str(node / "manifest.json"), "allowed_signers": str(node / "allowed_signers"), **extra}


def test_node_verifies_its_copy_and_returns_that_manifest(run_module, node_copy, bundle):
    expected = json.loads((bundle / "manifest.json").read_text())
    for check_mode in (False, True):
        result, failed = run_module(bundle_signature.main, node_args(node_copy), check_mode=check_mode)
        assert not failed, result
        assert result["changed"] is False
        assert result["signature"] == "verified" and result["signed_by"] == "builder@test"
        assert result["manifest"] == expected


def test_node_refuses_a_changed_copy(run_module, node_copy):
    text = (node_copy / "manifest.json").read_text().replace('"bin/kubeadm"', '"bin/kubeadm" ', 1)
    (node_copy / "manifest.json").write_text(text)
    result, failed = run_module(bundle_signature.main, node_args(node_copy))
    assert failed
    assert "does not match manifest.json" in result["msg"]


def test_node_refuses_a_copy_other_than_the_controllers(run_module, node_copy):
    result, failed = run_module(bundle_signature.main, node_args(node_copy, manifest_sha256="0" * 64))
    assert failed
    assert "but the manifest verified on the controller has" in result["msg"]


def test_node_refuses_unsigned_unless_allowed(run_module, node_copy, warnings):
    (node_copy / "manifest.json.sig").unlink()
    result, failed = run_module(bundle_signature.main, node_args(node_copy))
    assert failed
    assert "is missing, the bundle is unsigned" in result["msg"]
    result, failed = run_module(bundle_signature.main, node_args(node_copy, allow_unsigned=True))
    assert not failed and result["signature"] == "unsigned", result
    assert warnings


def test_node_without_the_files_fails_clearly(run_module, tmp_path):
    result, failed = run_module(bundle_signature.main, node_args(tmp_path))
    assert failed
    assert "cannot read the bundle's manifest or trusted keys on this node" in result["msg"]
