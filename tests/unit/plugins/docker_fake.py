"""A stand-in for the docker CLI behind AnsibleModule.run_command, with real `docker save` archives.

`docker load` really reads the archive's manifest.json and tags its RepoTags with the image ID a
legacy graphdriver store reports (the config digest), or a fixed other ID to imitate a store whose
IDs differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

FIXTURE = Path(__file__).parent / "module_utils" / "fixtures" / "docker-save-20.10-hello.tar"
FIXTURE_REF = "kubelab.invalid/fixture/hello:1.0"
FIXTURE_ID = "sha256:95462d259337a1c5e5ff864d97c45d2500a2e317245a0556e581fa53ebe1bebd"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_save_archive(path: Path, repo_tags: list[str], config: bytes = b'{"architecture":"amd64"}', oci=False) -> str:
    """A minimal `docker save`-shaped archive; returns its config digest."""
    digest = hashlib.sha256(config).hexdigest()
    config_name = f"blobs/sha256/{digest}" if oci else f"{digest}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": repo_tags, "Layers": []}]).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return "sha256:" + digest


class FakeDocker:
    def __init__(self, images=None, root="/var/lib/docker", running=True, load_id=None, load_rc=0):
        self.images = dict(images or {})
        self.root = root
        self.running = running
        self.load_id = load_id
        self.load_rc = load_rc
        self.calls: list[list[str]] = []

    def run_command(self, args, **_kwargs):
        args = list(args)
        self.calls.append(args)
        cmd = args[1:]
        if not self.running:
            return 1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
        if cmd[:1] == ["info"]:
            return 0, self.root + "\n", ""
        if cmd[:2] == ["image", "inspect"]:
            ref = cmd[-1]
            if ref in self.images:
                return 0, self.images[ref] + "\n", ""
            return 1, "[]\n", f"Error: No such image: {ref}"
        if cmd[:1] == ["load"]:
            if self.load_rc:
                return self.load_rc, "", "open /var/lib/docker/tmp: no space left on device"
            with tarfile.open(cmd[-1]) as archive:
                entry = json.loads(archive.extractfile("manifest.json").read())[0]
            image_id = self.load_id or "sha256:" + entry["Config"].rsplit("/", 1)[-1].removesuffix(".json")
            for tag in entry["RepoTags"]:
                self.images[tag] = image_id
            return 0, "Loaded image: " + ", ".join(entry["RepoTags"]) + "\n", ""
        raise AssertionError(f"unexpected docker call {args}")

    def loads(self):
        return [c for c in self.calls if c[1:2] == ["load"]]
