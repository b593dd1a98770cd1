"""Unit tests of the docker_image_preload module (real archives, a fake docker CLI)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common import warnings
from ansible_collections.kubelab.kubeadm.plugins.modules import docker_image_preload as M

_spec = importlib.util.spec_from_file_location("docker_fake", Path(__file__).parents[1] / "docker_fake.py")
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


@pytest.fixture
def docker(monkeypatch, tmp_path):
    state = fake.FakeDocker(root=str(tmp_path / "docker-root"))
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda self, args, **kw: state.run_command(args, **kw))
    monkeypatch.setattr(
        basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/bin/docker"
    )
    return state


@pytest.fixture
def hello(tmp_path):
    archive = tmp_path / "cache" / "hello.tar"
    archive.parent.mkdir()
    shutil.copy(fake.FIXTURE, archive)
    return {
        "ref": fake.FIXTURE_REF,
        "id": fake.FIXTURE_ID,
        "config_digest": fake.FIXTURE_ID,
        "archive": str(archive),
        "sha256": fake.sha256(archive),
        "size": archive.stat().st_size,
    }


def test_loads_a_missing_image_then_changes_nothing(run_module, docker, hello):
    result, failed = run_module(M.main, {"images": [hello]})
    assert not failed, result
    assert result["changed"] is True
    assert result["loaded"] == [fake.FIXTURE_REF]
    assert result["missing"] == [fake.FIXTURE_REF]
    assert result["images"][0]["status"] == "loaded"
    assert result["docker_root_dir"] == docker.root
    assert docker.images == {fake.FIXTURE_REF: fake.FIXTURE_ID}

    again, failed = run_module(M.main, {"images": [hello]})
    assert not failed
    assert again["changed"] is False
    assert again["missing"] == []
    assert again["images"][0]["status"] == "present"
    assert len(docker.loads()) == 1


def test_manifest_entries_pass_unchanged(run_module, docker, tmp_path):
    cache = tmp_path / "node-cache"
    (cache / "images").mkdir(parents=True)
    shutil.copy(fake.FIXTURE, cache / "images" / "hello.tar")
    image = {
        "ref": fake.FIXTURE_REF,
        "archive": "images/hello.tar",
        "id": fake.FIXTURE_ID,
        "config_digest": fake.FIXTURE_ID,
        "group": "kubeadm",
    }
    entry = {
        "path": "images/hello.tar",
        "size": fake.FIXTURE.stat().st_size,
        "sha256": fake.sha256(fake.FIXTURE),
        "component": "image",
    }
    plan, failed = run_module(M.main, {"images": [image], "files": [entry], "load": False, "cache_dir": str(cache)})
    assert not failed, plan
    assert plan["missing"] == [fake.FIXTURE_REF]
    result, failed = run_module(M.main, {"images": [image], "files": [entry], "archive_dir": str(cache)})
    assert not failed, result
    assert result["loaded"] == [fake.FIXTURE_REF]


def test_check_mode_with_diff_loads_nothing(run_module, docker, hello):
    other = {"ref": "present:1", "id": "sha256:p"}
    docker.images["present:1"] = "sha256:p"
    result, failed = run_module(M.main, {"images": [other, hello]}, check_mode=True, diff=True)
    assert not failed, result
    assert result["changed"] is True
    assert [e["status"] for e in result["images"]] == ["present", "would_load"]
    assert result["diff"] == {
        "before": {"present": ["present:1"]},
        "after": {"present": ["present:1", fake.FIXTURE_REF]},
    }
    assert docker.loads() == []


def test_report_only_checks_the_disk_and_changes_nothing(run_module, docker, hello, tmp_path):
    args = {"images": [hello], "load": False, "cache_dir": str(tmp_path / "cache" / "new")}
    result, failed = run_module(M.main, args)
    assert not failed, result
    assert result["changed"] is False
    assert result["missing"] == [fake.FIXTURE_REF]
    assert [s["path"] for s in result["space"]] == [str(tmp_path / "cache" / "new"), docker.root]
    assert docker.loads() == []

    result, failed = run_module(M.main, {**args, "min_free_mib": 1024 * 1024 * 1024})
    assert failed
    assert result["msg"].startswith("not enough disk space for")
    assert "Free some space" in result["msg"]


def test_a_damaged_archive_fails_naming_the_image_and_loads_nothing(run_module, docker, hello):
    Path(hello["archive"]).write_bytes(b"damaged in transit")
    result, failed = run_module(M.main, {"images": [hello]})
    assert failed
    assert result["msg"].startswith(fake.FIXTURE_REF + ": ")
    assert "the manifest says " + hello["sha256"] in result["msg"]
    assert docker.loads() == []


def test_a_stopped_docker_fails_with_the_fix(run_module, docker, hello):
    docker.running = False
    result, failed = run_module(M.main, {"images": [hello]})
    assert failed
    assert "systemctl start docker" in result["msg"]
    assert (result["cmd"], result["rc"]) == ("/usr/bin/docker info --format {{.DockerRootDir}}", 1)
    assert result["stderr"].startswith("Cannot connect to the Docker daemon")


def test_an_explicit_docker_path_is_used(run_module, docker, hello):
    result, failed = run_module(M.main, {"images": [hello], "docker_path": "/opt/docker/bin/docker"})
    assert not failed, result
    assert {c[0] for c in docker.calls} == {"/opt/docker/bin/docker"}


def test_documentation_matches_the_argument_spec():
    import yaml

    doc = yaml.safe_load(M.DOCUMENTATION)
    spec = M.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in doc["options"].items():
        assert option["type"] == spec[name]["type"], name
        assert option.get("default") == spec[name].get("default"), name
        assert bool(option.get("required")) == bool(spec[name].get("required")), name
    suboptions = doc["options"]["images"]["suboptions"]
    assert set(suboptions) == set(M.IMAGE_SPEC)
    for name, option in suboptions.items():
        assert option["type"] == M.IMAGE_SPEC[name]["type"], name
        assert option.get("default") == M.IMAGE_SPEC[name].get("default"), name
    yaml.safe_load(M.EXAMPLES)
    yaml.safe_load(M.RETURN)


def test_check_mode_before_docker_is_installed_counts_every_image_missing(run_module, monkeypatch, hello):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: None)
    result, failed = run_module(M.main, {"images": [hello]}, check_mode=True)
    assert not failed, result
    assert result["changed"] is True
    assert result["missing"] == result["loaded"] == [fake.FIXTURE_REF]
    report, failed = run_module(M.main, {"images": [hello], "load": False}, check_mode=True)
    assert not failed
    assert report["changed"] is False
    assert report["loaded"] == []


def test_without_docker_a_real_run_fails_with_the_fix(run_module, monkeypatch, hello):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: None)
    result, failed = run_module(M.main, {"images": [hello]})
    assert failed
    assert "install Docker Engine first" in result["msg"]


def test_check_mode_with_a_stopped_docker_warns_instead_of_failing(run_module, docker, hello):
    docker.running = False
    result, failed = run_module(M.main, {"images": [hello], "load": False}, check_mode=True)
    assert not failed, result
    assert result["missing"] == [fake.FIXTURE_REF]
    assert any("asking Docker for its root directory failed" in str(w) for w in warnings.get_warning_messages())
