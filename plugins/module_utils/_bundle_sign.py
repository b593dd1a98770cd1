# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signing and verifying a bundle's manifest.json with OpenSSH (`ssh-keygen -Y sign/verify`).

PRIVATE to the kubelab.kubeadm collection: not a public API.

Node and controller code: Python 3.8 and the standard library only, plus the ssh-keygen binary of
openssh-client (docs/bundle.md, "Signing"). The signature (manifest.json.sig, an SSHSIG of namespace
kubelab-bundle) covers manifest.json, which holds every file's sha256: a bundle whose manifest
verifies with a trusted key and whose files match the manifest is the bundle its builder made.

Trusted keys are OpenSSH public key lines (`ssh-ed25519 AAAA... comment`). They become an
allowed-signers file (ssh-keygen(1), ALLOWED SIGNERS) of one principal, kubelab-bundle, restricted
to the namespace kubelab-bundle. The data to sign or verify goes to ssh-keygen on standard input;
a key's passphrase is never asked for (an encrypted key must be in ssh-agent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

from ansible_collections.kubelab.kubeadm.plugins.module_utils._bundle_files import SIGNATURE_NAME, BundleError

NAMESPACE = "kubelab-bundle"
PRINCIPAL = "kubelab-bundle"
ALLOWED_SIGNERS_NAME = "allowed_signers"
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
TIMEOUT = 60
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
# What may stand in a comment of the allowed-signers file (one line, no quotes).
_COMMENT_UNSAFE = re.compile(r"[^A-Za-z0-9@._:+/=-]+")


# --------------------------------------------------------------------------- public keys


def parse_public_key(line: str) -> dict:
    """An OpenSSH public key line -> {type, key (base64), comment, fingerprint}. Raises BundleError."""
    text = str(line).strip()
    parts = text.split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise BundleError(
            f"{_short(text)!r} is not an OpenSSH public key line: give the one line of the signing key's .pub file, "
            f"'<type> <base64> [comment]' with a type of {', '.join(KEY_TYPES)}"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        blob = b""
    if len(blob) < 8 or blob[4 : 4 + int.from_bytes(blob[:4], "big")] != parts[0].encode("ascii"):
        raise BundleError(
            f"{_short(text)!r}: the key data is not a {parts[0]} key: copy the whole line of the .pub file again"
        )
    comment = parts[2].strip() if len(parts) > 2 else ""
    return {"type": parts[0], "key": parts[1], "comment": comment, "fingerprint": fingerprint(blob)}


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a key blob (what `ssh-keygen -l` prints)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def allowed_signers(trusted_keys) -> str:
    """The allowed-signers file for trusted_keys (OpenSSH public key lines). Raises BundleError."""
    lines = [
        "# Keys trusted to sign kubelab offline bundles (ssh-keygen -Y verify, namespace kubelab-bundle).",
        "# Written by kubelab.kubeadm from cluster_bundle_trusted_keys.",
    ]
    seen = set()
    for line in trusted_keys:
        key = parse_public_key(line)
        if key["fingerprint"] in seen:
            continue
        seen.add(key["fingerprint"])
        comment = _COMMENT_UNSAFE.sub("_", key["comment"]).strip("_")
        lines.append(
            f'{PRINCIPAL} namespaces="{NAMESPACE}" {key["type"]} {key["key"]}' + (f" {comment}" if comment else "")
        )
    return "\n".join(lines) + "\n"


def signers_by_fingerprint(text: str) -> dict:
    """fingerprint -> comment of each key in an allowed-signers file's text."""
    found = {}
    for line in text.splitlines():
        words = line.split()
        for index, word in enumerate(words):
            if word in KEY_TYPES and index + 1 < len(words):
                try:
                    key = parse_public_key(" ".join(words[index:]))
                except BundleError:
                    break
                found[key["fingerprint"]] = key["comment"]
                break
    return found


# --------------------------------------------------------------------------- ssh-keygen


def ssh_keygen() -> str:
    path = shutil.which("ssh-keygen") or ("/usr/bin/ssh-keygen" if os.path.exists("/usr/bin/ssh-keygen") else None)
    if not path:
        raise BundleError(
            "ssh-keygen is not installed here: install openssh-client (Debian/Ubuntu) or openssh (RHEL), "
            "which verifies the bundle's signature"
        )
    return path


def _run(argv: list, data: bytes) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([ssh_keygen(), *argv], input=data, capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"ssh-keygen {' '.join(argv[:2])} did not run: {exc}") from None


def _said(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or b"").decode("utf-8", "replace") + (proc.stdout or b"").decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip() and "on standard input" not in line]
    return "; ".join(lines) or f"exit status {proc.returncode}"


def sign(data: bytes, key_path: str) -> bytes:
    """The SSHSIG signature (armored text) of data with the private key at key_path (or, when key_path is a
    .pub whose private half is in ssh-agent, by the agent). Raises BundleError."""
    if not os.path.isfile(key_path):
        raise BundleError(
            f"the signing key {key_path} does not exist: create one with `ssh-keygen -t ed25519 -f {key_path}` "
            "(keep it where the bundle is built) and give its .pub line to the inventories that trust it"
        )
    proc = _run(["-Y", "sign", "-q", "-n", NAMESPACE, "-f", key_path], data)
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        raise BundleError(
            f"ssh-keygen could not sign with {key_path} ({_said(proc)}): use an unencrypted key, or load an "
            "encrypted one into ssh-agent (ssh-add) and name its .pub file"
        )
    return proc.stdout


def public_key_of(key_path: str) -> str:
    """The public key line of a signing key: <key>.pub, else derived by ssh-keygen -y (unencrypted keys)."""
    pub = key_path if key_path.endswith(".pub") else key_path + ".pub"
    if os.path.isfile(pub):
        with open(pub, encoding="utf-8") as handle:
            return handle.read().strip()
    proc = _run(["-y", "-f", key_path], b"")
    if proc.returncode != 0:
        raise BundleError(f"cannot read the public half of {key_path} ({_said(proc)}): put it next to it as {pub}")
    return proc.stdout.decode("utf-8", "replace").strip()


def _with_files(signature: bytes, signers: str, action):
    tmp = tempfile.mkdtemp(prefix="kubelab-sig-")
    try:
        sig_path = os.path.join(tmp, SIGNATURE_NAME)
        signers_path = os.path.join(tmp, ALLOWED_SIGNERS_NAME)
        with open(sig_path, "wb") as handle:
            handle.write(signature)
        with open(signers_path, "w", encoding="utf-8") as handle:
            handle.write(signers)
        return action(sig_path, signers_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verify(data: bytes, signature: bytes, signers: str) -> dict:
    """Verify signature over data against an allowed-signers text. Returns {fingerprint, signed_by}.

    Raises BundleError naming what is wrong: signed by an untrusted key (which), or a signature that
    does not match the data (the manifest changed after signing, or it is no signature of ours).
    """
    trusted = signers_by_fingerprint(signers)

    def run(sig_path, signers_path):
        good = _run(["-Y", "verify", "-f", signers_path, "-I", PRINCIPAL, "-n", NAMESPACE, "-s", sig_path], data)
        if good.returncode == 0:
            return good, None
        return good, _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", sig_path], data)

    good, novalidate = _with_files(signature, signers, run)
    if novalidate is None:
        match = _FINGERPRINT.search(good.stdout.decode("utf-8", "replace") + good.stderr.decode("utf-8", "replace"))
        found = match.group(0) if match else ""
        return {"fingerprint": found, "signed_by": trusted.get(found, "")}
    if novalidate.returncode == 0:
        match = _FINGERPRINT.search(novalidate.stdout.decode("utf-8", "replace"))
        other = match.group(0) if match else "(unknown)"
        raise BundleError(
            f"{SIGNATURE_NAME} is a valid signature by key {other}, which is not trusted (trusted: "
            f"{', '.join(sorted(trusted)) or 'none'}): if you trust the builder who holds that key, add its public "
            "key line to the trusted keys; otherwise get a bundle signed by a trusted key"
        )
    raise BundleError(
        f"{SIGNATURE_NAME} does not match manifest.json (ssh-keygen: {_said(good)}): manifest.json was changed "
        f"after it was signed, or {SIGNATURE_NAME} is not a signature of namespace {NAMESPACE}. Do not use this "
        "bundle: copy it again from its builder, or rebuild and sign it"
    )


def signature_valid(data: bytes, signature: bytes) -> bool:
    """Whether signature is a well-formed kubelab-bundle signature over data, by any key."""

    def run(sig_path, _signers_path):
        return _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", sig_path], data).returncode == 0

    return _with_files(signature, "", run)


# --------------------------------------------------------------------------- a manifest's trust


def check_manifest(manifest_raw: bytes, signature, signers: str, allow_unsigned: bool, where: str) -> dict:
    """The trust of a manifest: its signature (bytes, or None when there is none) against signers.

    Returns {signature: verified|unsigned|invalid, fingerprint, signed_by, warnings}. Raises BundleError
    when the manifest is not verified and allow_unsigned is false. ``where`` names the bundle in messages.
    """
    has_keys = bool(signers_by_fingerprint(signers))
    problem = None
    if signature is None:
        problem = (
            f"{where}: {SIGNATURE_NAME} is missing, the bundle is unsigned. Sign it where it was built "
            f"(playbooks/bundle.yml with bundle_signing_key, or `ssh-keygen -Y sign -n {NAMESPACE} -f KEY "
            "manifest.json`)"
        )
    elif not has_keys:
        problem = (
            f"{where}: no trusted signing key is given, so {SIGNATURE_NAME} cannot be checked. Set the trusted keys "
            "(cluster_bundle_trusted_keys) to the public key line of the key the bundle was signed with"
        )
    else:
        try:
            result = verify(manifest_raw, signature, signers)
        except BundleError as exc:
            problem = f"{where}: {exc}"
        else:
            return dict(result, signature="verified", warnings=[])
    if not allow_unsigned:
        raise BundleError(
            problem + "; or, to accept bundles nobody vouches for, set allow_unsigned (cluster_bundle_allow_unsigned: "
            "true)"
        )
    status = "unsigned" if signature is None else "invalid" if has_keys else "unchecked"
    return {
        "signature": status,
        "fingerprint": "",
        "signed_by": "",
        "warnings": [
            f"the bundle's manifest is not verified ({status}), accepted because allow_unsigned "
            f"(cluster_bundle_allow_unsigned) is true. {problem}"
        ],
    }


def read_signature(path: str):
    """The bytes of a signature file, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
