"""playbooks/bundle.yml end to end, against a loopback HTTP server that serves the official URL layout.

No internet: a ThreadingHTTPServer on 127.0.0.1 (random port) serves dl.k8s.io-, GitHub-release- and
download.docker.com-like paths with small real archives, their published checksum files in the three
upstream formats (bare hex without newline, bare hex with newline, `hex  filename`) and a real kubeadm when one
was built on this machine (else a test double that answers `kubeadm config images list -o json`). Images come
from the local Docker store (bundle_image_source=local), created here with `docker import` under a unique
name that nothing else uses, and removed again at the end.

Checked: the layout, the manifest, `sha256sum -c SHA256SUMS`, the tarball, a second run that downloads nothing
and changes nothing (also in check mode), a wrong published checksum that fails naming the file with the
expected and actual checksum, a missing pin that fails before any download, trust on first use printing the
pins, and one changed byte in an image archive failing kubelab.kubeadm.bundle_verify.

Run: .venv/bin/pytest tests/bundle -q   (needs a reachable Docker Engine; skipped otherwise)
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
K8S, CRICTL, CNI, DOCKER, CRI_DOCKERD, FLANNEL = "1.36.3", "1.36.0", "1.9.1", "29.7.2", "0.4.3", "0.28.9"
FLANNEL_CNI = "v1.9.1-flannel3"
ARCH = "amd64"
REAL_BIN_DIRS = [Path("/tmp/prefetch/bin"), Path(f"/var/tmp/kubelab/cache/{K8S}/bundle/bin")]
CRICTL_FILE = f"crictl-v{CRICTL}-linux-{ARCH}.tar.gz"
CNI_FILE = f"cni-plugins-linux-{ARCH}-v{CNI}.tgz"
DOCKER_FILE = f"docker-{DOCKER}.tgz"
CRI_DOCKERD_FILE = f"cri-dockerd-{CRI_DOCKERD}.{ARCH}.tgz"
DOWNLOADS = {
    "bin/kubeadm": f"/release/v{K8S}/bin/linux/{ARCH}/kubeadm",
    "bin/kubelet": f"/release/v{K8S}/bin/linux/{ARCH}/kubelet",
    "bin/kubectl": f"/release/v{K8S}/bin/linux/{ARCH}/kubectl",
    f"archives/{CRICTL_FILE}": f"/cri-tools/v{CRICTL}/{CRICTL_FILE}",
    f"archives/{CNI_FILE}": f"/cni/v{CNI}/{CNI_FILE}",
    f"archives/{DOCKER_FILE}": f"/docker/x86_64/{DOCKER_FILE}",
    f"archives/{CRI_DOCKERD_FILE}": f"/cri-dockerd/v{CRI_DOCKERD}/{CRI_DOCKERD_FILE}",
    "manifests/kube-flannel.yml": f"/flannel/v{FLANNEL}/kube-flannel.yml",
}

KUBEADM_DOUBLE = """#!/bin/sh
# Test double of kubeadm for the download test only: `kubeadm config images list --kubernetes-version V
# --image-repository R -o json` as kubeadm 1.36 prints it.
repo=registry.k8s.io; ver=""
while [ $# -gt 0 ]; do
  case "$1" in
    --image-repository) repo="$2"; shift ;;
    --image-repository=*) repo="${1#*=}" ;;
    --kubernetes-version) ver="$2"; shift ;;
    --kubernetes-version=*) ver="${1#*=}" ;;
  esac
  shift
done
cat <<EOF
{"kind": "Images", "apiVersion": "output.kubeadm.k8s.io/v1alpha3", "images": [
 "$repo/kube-apiserver:$ver", "$repo/kube-controller-manager:$ver", "$repo/kube-scheduler:$ver",
 "$repo/kube-proxy:$ver", "$repo/coredns:v1.14.2", "$repo/pause:3.10.2", "$repo/etcd:3.6.8-0"]}
EOF
"""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_tgz(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))


def script(name: str) -> bytes:
    return f"#!/bin/sh\necho '{name} (bundle loopback test artifact)'\n".encode()


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str]

    def log_request(self, code="-", size="-"):
        self.requests.append(self.path)


@dataclass
class Lab:
    base: Path
    served: Path
    bundle_dir: Path
    url: str
    repo_prefix: str
    kubeadm_images: list[str]
    pod_network_images: list[str]
    test_images: list[str]
    pins: dict[str, str]
    requests: list[str]
    real_kubeadm: bool
    runs: dict = field(default_factory=dict)

    def extra_vars(self, **overrides) -> dict:
        values = {
            "bundle_kubernetes_version": K8S,
            "bundle_architecture": ARCH,
            "bundle_dir": str(self.bundle_dir),
            "bundle_tarball": True,
            "bundle_docker_version": DOCKER,
            "bundle_cri_dockerd_version": CRI_DOCKERD,
            "bundle_cni_plugins_version": CNI,
            "bundle_crictl_version": CRICTL,
            "bundle_flannel_version": FLANNEL,
            "bundle_kubernetes_base_url": f"{self.url}/release",
            "bundle_crictl_base_url": f"{self.url}/cri-tools",
            "bundle_cni_plugins_base_url": f"{self.url}/cni",
            "bundle_docker_base_url": f"{self.url}/docker",
            "bundle_cri_dockerd_base_url": f"{self.url}/cri-dockerd",
            "bundle_flannel_base_url": f"{self.url}/flannel",
            "bundle_image_repository": f"{self.repo_prefix}/k8s",
            "bundle_image_source": "local",
            "bundle_pinned_sha256": self.pins,
            "bundle_test_images": self.test_images,
            "bundle_signing_key": str(self.base / "signing" / "builder"),
        }
        values.update(overrides)
        return values


@dataclass
class Run:
    rc: int
    doc: dict
    requests: list[str]
    output: str

    def result(self, task_name: str) -> dict:
        for play in self.doc.get("plays", []):
            for task in play["tasks"]:
                if task["task"]["name"] == task_name:
                    return task["hosts"]["localhost"]
        raise AssertionError(f"no task {task_name!r} ran:\n{self.output[-4000:]}")

    @property
    def stats(self) -> dict:
        return self.doc["stats"]["localhost"]


def docker_reachable() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_playbook(lab: Lab, extra: dict, *options: str) -> Run:
    vars_file = lab.base / f"vars-{uuid.uuid4().hex[:8]}.json"
    vars_file.write_text(json.dumps(extra))
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(
        {
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }
    )
    start = len(lab.requests)
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/bundle.yml", "-e", f"@{vars_file}", *options],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = {}
    return Run(proc.returncode, doc, lab.requests[start:], proc.stdout + proc.stderr)


def _serve(lab_base: Path, repo_prefix: str) -> tuple[Path, dict, list[str], bool]:
    """Write the served tree; return (root, pins, kubeadm image list, real kubeadm?)."""
    www = lab_base / "www"
    kube = www / f"release/v{K8S}/bin/linux/{ARCH}"
    kube.mkdir(parents=True)
    real_dir = next((d for d in REAL_BIN_DIRS if os.access(d / "kubeadm", os.X_OK)), None)
    for name in ("kubeadm", "kubelet", "kubectl"):
        target = kube / name
        if name == "kubeadm" and real_dir is not None:
            target.symlink_to(real_dir / "kubeadm")
        elif name == "kubeadm":
            target.write_text(KUBEADM_DOUBLE)
        else:
            target.write_bytes(script(name))
        if not target.is_symlink():
            target.chmod(0o755)
        (kube / f"{name}.sha256").write_text(sha256(target))  # dl.k8s.io: bare hex, no newline
    crictl = www / f"cri-tools/v{CRICTL}/{CRICTL_FILE}"
    make_tgz(crictl, {"crictl": script("crictl")})
    crictl.with_name(CRICTL_FILE + ".sha256").write_text(sha256(crictl) + "\n")  # bare hex + newline
    cni = www / f"cni/v{CNI}/{CNI_FILE}"
    make_tgz(cni, {f"./{n}": script(n) for n in ("bridge", "host-local", "loopback", "portmap", "LICENSE")})
    cni.with_name(CNI_FILE + ".sha256").write_text(f"{sha256(cni)}  {CNI_FILE}\n")  # sha256sum format
    docker = www / f"docker/x86_64/{DOCKER_FILE}"
    names = ("docker", "dockerd", "containerd", "containerd-shim-runc-v2", "ctr", "runc", "docker-init", "docker-proxy")
    make_tgz(docker, {f"docker/{n}": script(n) for n in names})
    cri_dockerd = www / f"cri-dockerd/v{CRI_DOCKERD}/{CRI_DOCKERD_FILE}"
    make_tgz(cri_dockerd, {"cri-dockerd/cri-dockerd": script("cri-dockerd")})
    flannel = www / f"flannel/v{FLANNEL}/kube-flannel.yml"
    flannel.parent.mkdir(parents=True)
    flannel.write_text(
        f"""---
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
spec:
  template:
    spec:
      initContainers:
        - name: install-cni-plugin
          image: {repo_prefix}/flannel-io/flannel-cni-plugin:{FLANNEL_CNI}
        - name: install-cni
          image: {repo_prefix}/flannel-io/flannel:v{FLANNEL}
      containers:
        - name: kube-flannel
          image: {repo_prefix}/flannel-io/flannel:v{FLANNEL}
"""
    )
    # A mirror whose published crictl checksum is wrong (the file itself is the good one).
    bad = www / f"bad/cri-tools/v{CRICTL}/{CRICTL_FILE}"
    bad.parent.mkdir(parents=True)
    shutil.copyfile(crictl, bad)
    bad.with_name(CRICTL_FILE + ".sha256").write_text("0" * 63 + "1\n")
    pins = {
        f"docker-{DOCKER}-{ARCH}": sha256(docker),
        f"cri_dockerd-{CRI_DOCKERD}-{ARCH}": sha256(cri_dockerd),
        f"flannel-{FLANNEL}": sha256(flannel),
    }
    out = subprocess.run(
        [str(kube / "kubeadm"), "config", "images", "list", "--kubernetes-version", f"v{K8S}",
         "--image-repository", f"{repo_prefix}/k8s", "-o", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return www, pins, json.loads(out)["images"], real_dir is not None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not docker_reachable():
        pytest.skip("Docker Engine is not reachable (start it with tests/lab/host-docker.sh)")
    if os.uname().machine != "x86_64":
        pytest.skip("the loopback bundle test serves amd64 artifacts")
    base = tmp_path_factory.mktemp("bundle-loopback")
    (base / "signing").mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "builder@loopback", "-f", f"{base}/signing/builder"],
        check=True,
        timeout=30,
    )
    repo_prefix = f"kubelab-bundle-test.invalid/t{uuid.uuid4().hex[:10]}"
    www, pins, kubeadm_images, real = _serve(base, repo_prefix)
    pod_images = [
        f"{repo_prefix}/flannel-io/flannel-cni-plugin:{FLANNEL_CNI}",
        f"{repo_prefix}/flannel-io/flannel:v{FLANNEL}",
    ]
    test_images = [f"{repo_prefix}/e2e-test-images/agnhost:2.63.0"]
    created = []
    try:
        for ref in kubeadm_images + pod_images + test_images:
            rootfs = io.BytesIO()
            with tarfile.open(fileobj=rootfs, mode="w") as archive:
                data = f"{ref}\n".encode()
                info = tarfile.TarInfo("image-name.txt")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            subprocess.run(["docker", "import", "-", ref], input=rootfs.getvalue(), capture_output=True, check=True)
            created.append(ref)
        requests: list[str] = []
        handler = functools.partial(type("H", (_Handler,), {"requests": requests}), directory=str(www))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Lab(
                base=base,
                served=www,
                bundle_dir=base / "out" / f"kubelab-bundle-{K8S}-{ARCH}",
                url=f"http://127.0.0.1:{server.server_address[1]}",
                repo_prefix=repo_prefix,
                kubeadm_images=kubeadm_images,
                pod_network_images=pod_images,
                test_images=test_images,
                pins=pins,
                requests=requests,
                real_kubeadm=real,
            )
        finally:
            server.shutdown()
            server.server_close()
    finally:
        if created:
            subprocess.run(["docker", "image", "rm", *created], capture_output=True, check=False)


@pytest.fixture(scope="module")
def first_run(lab):
    run = run_playbook(lab, lab.extra_vars())
    assert run.rc == 0, run.output[-6000:]
    return run


def test_first_run_builds_the_documented_layout(lab, first_run):
    bundle = lab.bundle_dir
    files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    archives = sorted(
        "images/" + ref.replace("/", "_").replace(":", "_") + ".tar"
        for ref in lab.kubeadm_images + lab.pod_network_images + lab.test_images
    )
    assert files == sorted([*DOWNLOADS, *archives, "manifest.json", "manifest.json.sig", "SHA256SUMS"])
    for rel, path in DOWNLOADS.items():
        assert sha256(bundle / rel) == sha256(lab.served / path.lstrip("/")), rel
        assert f"{path}" in first_run.requests, rel
    assert os.access(bundle / "bin/kubeadm", os.X_OK)
    # signed with the builder's key: its public line verifies it (ssh-keygen, as every node does)
    signers = bundle.parent / "allowed_signers"
    public = (lab.base / "signing" / "builder.pub").read_text()
    signers.write_text(f'kubelab-bundle namespaces="kubelab-bundle" {public}')
    argv = ["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "kubelab-bundle", "-n", "kubelab-bundle"]
    proc = subprocess.run(
        [*argv, "-s", str(bundle / "manifest.json.sig")],
        input=(bundle / "manifest.json").read_bytes(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_manifest_records_versions_files_and_images(lab, first_run):
    manifest = json.loads((lab.bundle_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["kubernetes_version"] == K8S
    assert manifest["architecture"] == ARCH
    assert manifest["builder"] == "playbooks/bundle.yml"
    assert manifest["image_repository"] == f"{lab.repo_prefix}/k8s"
    assert manifest["versions"] == {
        "kubernetes": K8S,
        "docker": DOCKER,
        "cri_dockerd": CRI_DOCKERD,
        "cni_plugins": CNI,
        "crictl": CRICTL,
        "flannel": FLANNEL,
        "flannel_cni_plugin": FLANNEL_CNI.lstrip("v"),
    }
    components = {f["path"]: f["component"] for f in manifest["files"]}
    assert components["bin/kubeadm"] == "kubeadm"
    assert components[f"archives/{DOCKER_FILE}"] == "docker"
    assert components[f"archives/{CRI_DOCKERD_FILE}"] == "cri_dockerd"
    assert components["manifests/kube-flannel.yml"] == "pod_network_manifest"
    groups = {i["ref"]: i["group"] for i in manifest["images"]}
    assert groups == {
        **dict.fromkeys(lab.kubeadm_images, "kubeadm"),
        **dict.fromkeys(lab.pod_network_images, "pod_network"),
        **dict.fromkeys(lab.test_images, "test"),
    }
    for image in manifest["images"]:
        docker_id = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Id}}", image["ref"]], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert image["id"] == docker_id
        assert image["config_digest"] == docker_id  # the legacy graphdriver store of Docker 20.10
    verify = first_run.result("Verify the bundle as the cluster playbooks will")
    assert verify["verified_files"] == len(manifest["files"])


def test_sha256sums_passes_sha256sum_c(lab, first_run):
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=lab.bundle_dir, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    manifest = json.loads((lab.bundle_dir / "manifest.json").read_text())
    assert check.stdout.count(": OK\n") == len(manifest["files"]) + 1


def test_tarball_holds_the_same_bundle(lab, first_run):
    tarball = Path(f"{lab.bundle_dir}.tar.gz")
    packed = subprocess.run(
        ["tar", "-xzOf", str(tarball), f"{lab.bundle_dir.name}/manifest.json"], capture_output=True, check=True
    ).stdout
    assert packed == (lab.bundle_dir / "manifest.json").read_bytes()
    assert first_run.result("Verify the tarball")["verified_files"] > 0


def test_second_run_downloads_nothing_and_changes_nothing(lab, first_run):
    before = {p: p.stat().st_mtime_ns for p in lab.bundle_dir.rglob("*") if p.is_file()}
    run = run_playbook(lab, lab.extra_vars())
    assert run.rc == 0, run.output[-6000:]
    assert run.stats["changed"] == 0, run.output[-6000:]
    downloads = run.result("Download each file with its published or pinned sha256")["results"]
    assert [r["changed"] for r in downloads] == [False] * len(DOWNLOADS)
    assert {r["msg"] for r in downloads} == {"file already exists"}
    # only the small published checksum files were fetched again, no artifact
    assert run.requests, "the published checksums are read on every run"
    assert all(path.endswith(".sha256") for path in run.requests), run.requests
    after = {p: p.stat().st_mtime_ns for p in lab.bundle_dir.rglob("*") if p.is_file()}
    assert after == before


def test_check_mode_on_a_built_bundle_reports_no_change(lab, first_run):
    run = run_playbook(lab, lab.extra_vars(), "--check")
    assert run.rc == 0, run.output[-6000:]
    assert run.stats["changed"] == 0, run.output[-6000:]


def test_wrong_published_checksum_fails_naming_file_expected_and_actual(lab, first_run):
    crictl = lab.bundle_dir / "archives" / CRICTL_FILE
    good = sha256(crictl)
    run = run_playbook(lab, lab.extra_vars(bundle_crictl_base_url=f"{lab.url}/bad/cri-tools"))
    assert run.rc != 0
    message = run.result("Stop and name each download that failed")["msg"]
    assert f"archives/{CRICTL_FILE} ({lab.url}/bad/cri-tools/v{CRICTL}/{CRICTL_FILE}): checksum mismatch" in message
    assert f"expected sha256 {'0' * 63 + '1'}" in message
    assert f"(published at {lab.url}/bad/cri-tools/v{CRICTL}/{CRICTL_FILE}.sha256)" in message
    assert f"actual {good}" in message
    assert "kubeadm" not in message  # only the failed file is named
    assert sha256(crictl) == good  # the verified file already there is kept
    assert run.stats["changed"] == 0


def test_missing_pin_fails_before_any_download(lab, first_run):
    fresh = lab.base / "fresh" / "bundle"
    run = run_playbook(lab, lab.extra_vars(bundle_dir=str(fresh), bundle_pinned_sha256={}))
    assert run.rc != 0
    message = run.result("Check that every download without a published checksum is pinned")["msg"]
    for key in (f"docker-{DOCKER}-{ARCH}", f"cri_dockerd-{CRI_DOCKERD}-{ARCH}", f"flannel-{FLANNEL}"):
        assert key in message
    assert "bundle_trust_on_first_use=true" in message
    assert run.requests == []
    assert not fresh.exists()


def test_check_mode_on_a_new_bundle_dir_downloads_and_creates_nothing(lab, first_run):
    fresh = lab.base / "fresh-check" / "bundle"
    run = run_playbook(lab, lab.extra_vars(bundle_dir=str(fresh)), "--check")
    assert run.rc == 0, run.output[-6000:]
    assert "does not exist yet" in run.result("Say what check mode cannot show yet")["msg"]
    assert run.requests == []
    assert not fresh.parent.exists()


def test_trust_on_first_use_prints_the_values_to_pin(lab, first_run):
    run = run_playbook(lab, lab.extra_vars(bundle_pinned_sha256={}, bundle_trust_on_first_use=True))
    assert run.rc == 0, run.output[-6000:]
    shown = run.result("Show the sha256 values to pin")["msg"]
    assert shown[2] == lab.pins
    assert run.stats["changed"] == 0


def test_one_changed_byte_in_an_archive_fails_bundle_verify(lab, first_run):
    manifest = json.loads((lab.bundle_dir / "manifest.json").read_text())
    archive = manifest["images"][0]["archive"]
    expected = next(f["sha256"] for f in manifest["files"] if f["path"] == archive)
    path = lab.bundle_dir / archive
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    path.write_bytes(bytes(bad))
    try:
        actual = sha256(path)
        argv = [str(VENV_BIN / "ansible"), "localhost", "-m", "kubelab.kubeadm.bundle_verify"]
        trusted = (lab.base / "signing" / "builder.pub").read_text().strip()
        argv += ["-a", json.dumps({"path": str(lab.bundle_dir), "trusted_keys": [trusted]})]
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    finally:
        path.write_bytes(good)
    assert proc.returncode != 0
    assert f"{archive}: sha256 mismatch: expected {expected}, actual {actual}" in proc.stdout, proc.stdout + proc.stderr
    assert sha256(path) == expected


# ------------------------------------------------------------------ intranet registry (docs/registry-mirror.md)

REGISTRY_BINARIES = [os.environ.get("KUBELAB_REGISTRY_BIN", ""), "/var/tmp/kubelab/tools/registry"]
REGISTRY_HINT = (
    "no CNCF Distribution registry binary; build one with "
    "`GOBIN=/var/tmp/kubelab/tools go install github.com/distribution/distribution/v3/cmd/registry@v3.0.0`"
)


def _doc_script(section: str, **values: str) -> str:
    """The first shell block of a docs/registry-mirror.md section, with its NAME=value lines set."""
    text = (REPO / "docs" / "registry-mirror.md").read_text()
    body = text.split(section, 1)[1]
    script = body.split("```\n", 2)[1]
    for name, value in values.items():
        script = re.sub(rf"(?m)^{name}=\S*", f"{name}={value}", script, count=1)
    return script


@pytest.fixture(scope="module")
def registry(lab, tmp_path_factory):
    binary = next((b for b in REGISTRY_BINARIES if b and os.access(b, os.X_OK)), shutil.which("registry"))
    if not binary:
        pytest.skip(REGISTRY_HINT)
    base = tmp_path_factory.mktemp("registry")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = base / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        for _attempt in range(50):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        refs = lab.kubeadm_images + lab.pod_network_images + lab.test_images
        mirrored = [f"{address}/k8s/{ref.split('/', 1)[1]}" for ref in refs]
        subprocess.run(["docker", "image", "rm", *mirrored], capture_output=True, check=False)


def _docker_id(ref: str) -> str:
    return subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_registry_doc_script_pushes_and_pull_mode_rebuilds_the_same_bundle(lab, first_run, registry):
    """docs/registry-mirror.md step 2 pushes the bundle; bundle.yml in pull mode through that registry
    (bundle_image_pull_mirrors) then finds every archive up to date: same image IDs, same bundle."""
    target_repo = f"{registry}/k8s"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{VENV_BIN}:{os.environ['PATH']}")
    script = _doc_script(
        "## 2. Push the bundle's images",
        BUNDLE=str(lab.bundle_dir),
        REGISTRY=target_repo,
        PUSH="yes",
        TRUSTED=str(lab.base / "signing" / "builder.pub"),
    )
    pushed = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert pushed.returncode == 0, pushed.stdout[-3000:] + pushed.stderr[-3000:]
    refs = lab.kubeadm_images + lab.pod_network_images + lab.test_images
    ids = {ref: _docker_id(ref) for ref in refs}
    catalog = json.loads(urllib.request.urlopen(f"http://{registry}/v2/_catalog").read())["repositories"]
    assert sorted(catalog) == sorted(f"k8s/{ref.split('/', 1)[1].rsplit(':', 1)[0]}" for ref in refs)
    # Forget every local copy, then let bundle.yml pull them back through the registry.
    mirrored = [f"{target_repo}/{ref.split('/', 1)[1]}" for ref in refs]
    subprocess.run(["docker", "image", "rm", *refs, *mirrored], capture_output=True, check=True)
    before = {p: p.stat().st_mtime_ns for p in lab.bundle_dir.rglob("*") if p.is_file()}
    run = run_playbook(
        lab,
        lab.extra_vars(
            bundle_image_source="pull", bundle_image_pull_mirrors={"kubelab-bundle-test.invalid": target_repo}
        ),
    )
    assert run.rc == 0, run.output[-6000:]
    pulls = run.result("Pull the images that are not in the local Docker store yet")["results"]
    assert [r["changed"] for r in pulls] == [True] * len(refs)
    assert all(r["image"]["RepoTags"] == [f"{target_repo}/{r['item'][0].split('/', 1)[1]}"] for r in pulls)
    tags = run.result("Name the images pulled through a mirror after themselves")["results"]
    assert [r["changed"] for r in tags] == [True] * len(refs)
    assert {ref: _docker_id(ref) for ref in refs} == ids
    exports = run.result("Save each image to its archive")["results"]
    assert [r["changed"] for r in exports] == [False] * len(refs)
    assert run.result("Write manifest.json and SHA256SUMS")["changed"] is False
    assert {p: p.stat().st_mtime_ns for p in lab.bundle_dir.rglob("*") if p.is_file()} == before
    # A second pull-mode run finds everything in place.
    again = run_playbook(
        lab,
        lab.extra_vars(
            bundle_image_source="pull", bundle_image_pull_mirrors={"kubelab-bundle-test.invalid": target_repo}
        ),
    )
    assert again.rc == 0, again.output[-6000:]
    assert again.stats["changed"] == 0, again.output[-6000:]
