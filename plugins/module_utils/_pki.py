# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CA public-key pins and join discovery data (the logic of kubeadm_join_info).

PRIVATE to the kubelab.kubeadm collection: not a public API.

kubeadm pins a CA as ``sha256:`` + hex(sha256(DER SubjectPublicKeyInfo)) of the certificate
(cmd/kubeadm/app/util/pubkeypin). The SPKI comes from the ``cryptography`` package when it is
installed; without it, from a small DER reader that takes the certificate's raw
SubjectPublicKeyInfo bytes, which is exactly what Go hashes (RawSubjectPublicKeyInfo). Both give
the same pins for RSA and ECDSA CAs; the unit tests check them against openssl.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import REDACTED, redact
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    KUBECONFIG_HINT,
    KubeadmError,
    check_readable_file,
    read_file,
    read_kubeconfig,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - exercised by forcing the DER reader in the tests
    HAS_CRYPTOGRAPHY = False

_PEM_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)
_CERT_KEY_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_HEX64_RE = re.compile(r"\b[0-9a-fA-F]{64}\b")
CA_HINT = (
    "run the task on the control-plane node (for a worker, delegate_to the control-plane host) with"
    " become: true, or set ca_cert_path to the cluster CA certificate (<certificatesDir>/ca.crt)"
)


class PkiError(KubeadmError):
    """A certificate that cannot be read or does not match."""


def pem_certificates(data, source):
    """DER bytes of every CERTIFICATE block in PEM data, in order."""
    blocks = _PEM_CERT_RE.findall(data or b"")
    if not blocks:
        raise PkiError(f"{source} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {CA_HINT}")
    ders = []
    for number, block in enumerate(blocks, 1):
        try:
            ders.append(base64.b64decode(b"".join(block.split()), validate=True))
        except (TypeError, ValueError, binascii.Error):
            raise PkiError(
                f"certificate {number} in {source} is not valid base64: the file is damaged; {CA_HINT}"
            ) from None
    return ders


def _der_header(buf, pos):
    """(tag, content start, content end) of the DER element at pos."""
    if pos + 2 > len(buf):
        raise ValueError("truncated DER element")
    tag = buf[pos]
    first = buf[pos + 1]
    if first < 0x80:
        length, start = first, pos + 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + 2 + count > len(buf):
            raise ValueError("bad DER length")
        length = int(binascii.hexlify(buf[pos + 2:pos + 2 + count]), 16)
        start = pos + 2 + count
    if start + length > len(buf):
        raise ValueError("truncated DER element")
    return tag, start, start + length


def raw_spki(cert_der):
    """The raw DER SubjectPublicKeyInfo of an X.509 certificate (Go's RawSubjectPublicKeyInfo).

    Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
    signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }
    """
    buf = bytearray(cert_der)
    tag, start, _end = _der_header(buf, 0)
    if tag != 0x30:
        raise ValueError("not a DER SEQUENCE")
    tag, pos, tbs_end = _der_header(buf, start)
    if tag != 0x30:
        raise ValueError("no tbsCertificate")
    tag, _s, end = _der_header(buf, pos)
    if tag == 0xA0:  # [0] EXPLICIT version
        pos = end
    # serialNumber, signature, issuer, validity, subject
    for expected in (0x02, 0x30, 0x30, 0x30, 0x30):
        tag, _s, end = _der_header(buf, pos)
        if tag != expected:
            raise ValueError(f"unexpected DER tag 0x{tag:02x} in tbsCertificate")
        pos = end
    tag, _s, end = _der_header(buf, pos)
    if tag != 0x30 or end > tbs_end:
        raise ValueError("no subjectPublicKeyInfo")
    return bytes(buf[pos:end])


def spki_der(cert_der, use_cryptography=None):
    """DER SubjectPublicKeyInfo of a certificate; PkiError if it is not a certificate."""
    if use_cryptography is None:
        use_cryptography = HAS_CRYPTOGRAPHY
    try:
        if use_cryptography:
            cert = x509.load_der_x509_certificate(bytes(cert_der))
            return cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return raw_spki(cert_der)
    except (ValueError, TypeError, IndexError) as exc:
        raise PkiError(f"not a valid X.509 certificate ({exc})") from None


def pin(cert_der, use_cryptography=None):
    """kubeadm's discovery-token-ca-cert-hash of a certificate: "sha256:<64 hex>"."""
    return "sha256:" + hashlib.sha256(spki_der(cert_der, use_cryptography)).hexdigest()


def ca_pins(pem_data, source, use_cryptography=None):
    """Pins of every certificate in a PEM bundle, in order, without duplicates."""
    pins = []
    for number, der in enumerate(pem_certificates(pem_data, source), 1):
        try:
            value = pin(der, use_cryptography)
        except PkiError as exc:
            raise PkiError(f"certificate {number} in {source}: {exc.msg}; {CA_HINT}") from None
        if value not in pins:
            pins.append(value)
    return pins


def api_server_endpoint(server):
    """'host:port' of a kubeconfig server URL, as kubeadm's join command prints it."""
    match = re.match(r"\A(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:?#\[\]]+)"
                     r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/?)\Z", server.strip())
    if not match or match.group("scheme").lower() != "https":
        raise KubeadmError(
            f"the kubeconfig's server {server!r} is not an https://host[:port] URL, so no API server endpoint"
            " for joining can be derived from it; fix the kubeconfig"
        )
    port = match.group("port") or "443"
    if not 0 < int(port) < 65536:
        raise KubeadmError(f"the kubeconfig's server {server!r} has an invalid port; fix the kubeconfig")
    return "{}:{}".format(match.group("host"), port)


def _kubeconfig_pins(kubeconfig, path, warnings):
    if kubeconfig["ca_data"]:
        return ca_pins(kubeconfig["ca_data"], f"certificate-authority-data of kubeconfig {path}")
    if kubeconfig["ca_file"]:
        data = read_file(kubeconfig["ca_file"], f"the certificate-authority of kubeconfig {path},", KUBECONFIG_HINT)
        return ca_pins(data, "{} (certificate-authority of kubeconfig {})".format(kubeconfig["ca_file"], path))
    warnings.append(
        "kubeconfig {} has no certificate-authority(-data) for cluster {!r}, so the CA in ca_cert_path could not"
        " be cross-checked against it".format(path, kubeconfig["name"])
    )
    return None


def join_info(runner, params, check_mode=False):
    """kubeadm_join_info: the whole run. Returns the result dict; raises KubeadmError."""
    warnings = []
    kubeconfig_path = params["kubeconfig"]
    ca_path = params["ca_cert_path"]
    kubeconfig = read_kubeconfig(kubeconfig_path, runner.module)
    endpoint = api_server_endpoint(kubeconfig["server"])
    hashes = ca_pins(read_file(ca_path, "ca_cert_path", CA_HINT), ca_path)

    kc_hashes = _kubeconfig_pins(kubeconfig, kubeconfig_path, warnings)
    if kc_hashes is not None and set(kc_hashes) != set(hashes):
        if not set(kc_hashes) & set(hashes):
            raise PkiError(
                f"the CA in {ca_path} ({', '.join(hashes)}) does not match the certificate authority of kubeconfig"
                f" {kubeconfig_path} ({', '.join(kc_hashes)}): they belong to different clusters. Point ca_cert_path"
                " and kubeconfig at the same cluster (on the control plane: /etc/kubernetes/pki/ca.crt and"
                " /etc/kubernetes/admin.conf)"
            )
        warnings.append(
            f"the CA bundle in {ca_path} and the certificate authority of kubeconfig {kubeconfig_path} only partly"
            f" agree (CA rotation in progress?); returning the pins of {ca_path}"
        )

    result = {
        "changed": False,
        "api_server_endpoint": endpoint,
        "ca_cert_hashes": hashes,
        "cluster_name": kubeconfig["name"],
        "join_discovery": {"apiServerEndpoint": endpoint, "caCertHashes": list(hashes)},
        "warnings": warnings,
    }
    if params.get("certificate_key"):
        result["changed"] = True
        result["certificate_key"] = None if check_mode else upload_certs(runner, params.get("config_path"))
    return result


def upload_certs(runner, config_path=None):
    """Run `kubeadm init phase upload-certs --upload-certs [--config F]`; return the new certificate key.

    kubeadm prints "[upload-certs] Using certificate key:" and the key on the last line.
    """
    args = ["init", "phase", "upload-certs", "--upload-certs"]
    if config_path:
        check_readable_file(config_path, "config_path", "give the kubeadm configuration the cluster was"
                            " initialised with, or leave config_path out")
        args.append("--config=" + config_path)
    _rc, out, _err = runner.run(args, action="uploading the control-plane certificates (kubeadm-certs Secret)")
    lines = [line.strip() for line in (out or "").splitlines() if line.strip()]
    key = lines[-1] if lines else ""
    if not _CERT_KEY_RE.match(key):
        stdout = _HEX64_RE.sub(REDACTED, redact(out or "", runner.secrets))
        raise PkiError(
            "`kubeadm init phase upload-certs --upload-certs` succeeded but its last output line is not a"
            " certificate key (64 lower-case hex characters); check the kubeadm version (>= 1.15 needed)",
            cmd=runner.last_cmd, stdout=stdout,
        )
    return key
