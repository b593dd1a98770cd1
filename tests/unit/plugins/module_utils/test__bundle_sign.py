"""_bundle_sign: ssh-keygen -Y sign/verify around a manifest (real ssh-keygen, keys in tmp_path)."""

from __future__ import annotations

import subprocess

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _bundle_sign as s
from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import BundleError

from ..conftest import make_key


def test_fingerprint_is_ssh_keygens(tmp_path):
    key = make_key(tmp_path, "k")
    line = (tmp_path / "k.pub").read_text()
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True
    )
    assert s.parse_public_key(line)["fingerprint"] == listed.stdout.split()[1]
    assert s.public_key_of(str(key)) == line.strip()
    (tmp_path / "k.pub").unlink()  # derived with ssh-keygen -y
    assert s.public_key_of(str(key)).split()[:2] == line.split()[:2]


def test_sign_then_verify_and_what_breaks_it(tmp_path):
    key = make_key(tmp_path, "k")
    signers = s.allowed_signers([(tmp_path / "k.pub").read_text()])
    signature = s.sign(b'{"files": []}\n', str(key))
    assert signature.startswith(b"-----BEGIN SSH SIGNATURE-----")
    assert s.verify(b'{"files": []}\n', signature, signers)["signed_by"] == "k@test"
    with pytest.raises(BundleError, match=r"does not match manifest\.json"):
        s.verify(b'{"files": [1]}\n', signature, signers)
    assert s.signature_valid(b'{"files": []}\n', signature)
    assert not s.signature_valid(b"other", signature)


def test_allowed_signers_is_one_principal_one_namespace_per_key(tmp_path):
    a, b = make_key(tmp_path, "a"), make_key(tmp_path, "b")
    lines = [(tmp_path / "a.pub").read_text(), (tmp_path / "b.pub").read_text(), (tmp_path / "a.pub").read_text()]
    text = s.allowed_signers(lines)
    keys = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(keys) == 2  # the duplicate is dropped
    assert all(line.startswith('kubelab-bundle namespaces="kubelab-bundle" ssh-ed25519 ') for line in keys)
    assert set(s.signers_by_fingerprint(text).values()) == {"a@test", "b@test"}
    assert a.exists() and b.exists()


def test_another_namespace_is_not_ours(tmp_path):
    key = make_key(tmp_path, "k")
    other = subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-q", "-n", "file", "-f", str(key)], input=b"data", capture_output=True, check=True
    ).stdout
    with pytest.raises(BundleError, match="not a signature of namespace kubelab-bundle"):
        s.verify(b"data", other, s.allowed_signers([(tmp_path / "k.pub").read_text()]))


def test_signing_problems_name_the_fix(tmp_path):
    with pytest.raises(BundleError, match="ssh-keygen -t ed25519 -f"):
        s.sign(b"x", str(tmp_path / "missing"))
    encrypted = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", str(encrypted)], check=True)
    with pytest.raises(BundleError, match="ssh-agent"):
        s.sign(b"x", str(encrypted))


def test_missing_ssh_keygen_names_the_package(monkeypatch):
    monkeypatch.setattr(s.shutil, "which", lambda name: None)
    monkeypatch.setattr(s.os.path, "exists", lambda path: False)
    with pytest.raises(BundleError, match="install openssh-client"):
        s.ssh_keygen()
