"""Unit tests of plugins/module_utils/_docker_images.py (real archives, a fake docker CLI)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _docker_images as D

_spec = importlib.util.spec_from_file_location("docker_fake", Path(__file__).parents[1] / "docker_fake.py")
fake = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake)


class FakeModule:
    """Just enough of AnsibleModule: run_command goes to the fake docker CLI."""

    def __init__(self, docker, params=None, check_mode=False, diff=False, docker_path="/usr/bin/docker"):
        self.docker = docker
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.docker_path = docker_path

    def run_command(self, args, **kwargs):
        return self.docker.run_command(args, **kwargs)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        assert (name, opt_dirs) == ("docker", ["/usr/local/bin"])
        return self.docker_path


def cli_for(docker):
    return D.DockerCli(FakeModule(docker), "/usr/bin/docker")


@pytest.fixture
def hello(tmp_path):
    archive = tmp_path / "hello.tar"
    shutil.copy(fake.FIXTURE, archive)
    return {
        "ref": fake.FIXTURE_REF,
        "id": fake.FIXTURE_ID,
        "config_digest": fake.FIXTURE_ID,
        "archive": str(archive),
        "sha256": fake.sha256(archive),
        "size": archive.stat().st_size,
    }


# accepted_ids / classify


def test_accepted_ids_keeps_order_and_drops_duplicates_and_empties():
    assert D.accepted_ids({"id": "sha256:a", "config_digest": "sha256:a"}) == ["sha256:a"]
    assert D.accepted_ids({"id": "sha256:a", "config_digest": "sha256:b"}) == ["sha256:a", "sha256:b"]
    assert D.accepted_ids({"id": "sha256:a", "config_digest": None}) == ["sha256:a"]


@pytest.mark.parametrize(
    ("current", "expected"),
    [(None, D.MISSING), ("sha256:a", D.PRESENT), ("sha256:b", D.PRESENT), ("sha256:c", D.MISMATCH)],
)
def test_classify(current, expected):
    assert D.classify({"id": "sha256:a", "config_digest": "sha256:b"}, current) == expected


# check_archive


def test_check_archive_accepts_the_real_docker_save_fixture(hello):
    D.check_archive(hello)


def test_check_archive_accepts_the_oci_layout_and_docker_hub_short_names(tmp_path):
    archive = tmp_path / "busybox.tar"
    digest = fake.make_save_archive(archive, ["busybox:1.36"], oci=True)
    D.check_archive(
        {
            "ref": "docker.io/library/busybox:1.36",
            "id": "sha256:" + "1" * 64,
            "config_digest": digest,
            "archive": str(archive),
            "sha256": fake.sha256(archive).upper(),
        }
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"archive": None}, "no archive given"),
        ({"archive": "/nonexistent/x.tar"}, "does not exist on the node"),
        ({"sha256": ""}, "refusing to load an unverified archive"),
        ({"sha256": "0" * 64}, "the manifest says " + "0" * 64),
        ({"ref": "registry.k8s.io/pause:3.10.1"}, "holds kubelab.invalid/fixture/hello:1.0, not registry.k8s.io/pause"),
        ({"config_digest": "sha256:" + "2" * 64}, "holds the image config " + fake.FIXTURE_ID),
    ],
)
def test_check_archive_refuses(hello, change, message):
    with pytest.raises(D.PreloadError, match=re.escape(message)):
        D.check_archive({**hello, **change})


def test_check_archive_refuses_a_file_that_is_no_docker_save_archive(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    with pytest.raises(D.PreloadError, match="is not a readable `docker save` archive"):
        D.check_archive({"ref": "x:1", "id": "sha256:a", "archive": str(junk), "sha256": fake.sha256(junk)})


def test_check_archive_names_an_untagged_image(tmp_path):
    archive = tmp_path / "untagged.tar"
    fake.make_save_archive(archive, [])
    with pytest.raises(D.PreloadError, match="holds an untagged image"):
        D.check_archive({"ref": "x:1", "id": "sha256:a", "archive": str(archive), "sha256": fake.sha256(archive)})


# disk space


def test_nearest_existing_walks_up_to_an_existing_directory(tmp_path):
    assert D.nearest_existing(str(tmp_path / "a" / "b" / "c")) == str(tmp_path)
    assert D.nearest_existing(str(tmp_path)) == str(tmp_path)


def test_space_report_reads_the_file_system(tmp_path):
    (entry,) = D.space_report([str(tmp_path / "not-yet")])
    st = os.statvfs(tmp_path)
    assert entry["path"] == str(tmp_path / "not-yet")
    assert entry["device"] == os.stat(tmp_path).st_dev
    assert abs(entry["free_bytes"] - st.f_bavail * st.f_frsize) < 64 * 1024 * 1024


MIB = 1024 * 1024


def test_space_problem_adds_up_paths_on_one_file_system():
    space = [
        {"path": "/cache", "free_bytes": 250 * MIB, "device": 1},
        {"path": "/docker", "free_bytes": 250 * MIB, "device": 1},
    ]
    needs = {"/cache": 100 * MIB, "/docker": 100 * MIB}
    assert D.space_problem(space, needs, 0) is None
    problem = D.space_problem(space, needs, 100 * MIB)
    assert problem.startswith("not enough disk space for /cache and /docker: 250 MiB free, 300 MiB needed")


def test_space_problem_checks_each_file_system_alone():
    space = [
        {"path": "/cache", "free_bytes": 150 * MIB, "device": 1},
        {"path": "/docker", "free_bytes": 50 * MIB, "device": 2},
    ]
    needs = {"/cache": 100 * MIB, "/docker": 100 * MIB}
    assert "for /docker: 50 MiB free, 100 MiB needed" in D.space_problem(space, needs, 0)


def test_space_problem_ignores_a_full_disk_when_nothing_is_needed():
    assert D.space_problem([{"path": "/d", "free_bytes": 0, "device": 1}], {"/d": 0}, 10 * MIB) is None


# DockerCli


def test_docker_cli_reads_root_dir_and_ids_and_reports_a_stopped_daemon():
    docker = fake.FakeDocker({"a:1": "sha256:a"}, root="/srv/docker")
    cli = cli_for(docker)
    assert cli.root_dir() == "/srv/docker"
    assert cli.image_id("a:1") == "sha256:a"
    assert cli.image_id("b:1") is None
    assert docker.calls[1] == ["/usr/bin/docker", "image", "inspect", "--format", "{{.Id}}", "a:1"]
    with pytest.raises(D.DockerUnavailable) as info:
        cli_for(fake.FakeDocker(running=False)).root_dir()
    assert info.value.msg == (
        "asking Docker for its root directory failed: `/usr/bin/docker info --format {{.DockerRootDir}}` exited with 1:"
        " Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
        " Fix: start Docker (systemctl start docker) and check `docker info`"
    )
    assert info.value.details["rc"] == 1
    assert info.value.details["cmd"] == "/usr/bin/docker info --format {{.DockerRootDir}}"


def test_docker_cli_an_empty_root_dir_counts_as_docker_not_answering():
    with pytest.raises(D.DockerUnavailable, match=r"printed nothing\. Fix: start Docker"):
        cli_for(fake.FakeDocker(root="")).root_dir()


def test_docker_cli_load_failure_is_reported():
    with pytest.raises(D.PreloadError) as info:
        cli_for(fake.FakeDocker(load_rc=1)).load("/x.tar")
    assert not isinstance(info.value, D.DockerUnavailable)
    assert info.value.msg == (
        "loading /x.tar into Docker failed: `/usr/bin/docker load --input /x.tar` exited with 1:"
        " open /var/lib/docker/tmp: no space left on device"
    )
    assert info.value.details["stderr"] == "open /var/lib/docker/tmp: no space left on device"


# preload


def test_preload_report_only_lists_missing_and_mismatching_images(hello):
    other = {"ref": "b:1", "id": "sha256:b"}
    third = {"ref": "c:1", "id": "sha256:c"}
    docker = fake.FakeDocker({"b:1": "sha256:b", "c:1": "sha256:other"})
    result = D.preload(cli_for(docker), [hello, other, third], load=False, check_mode=False)
    assert result["missing"] == [fake.FIXTURE_REF, "c:1"]
    assert [e["status"] for e in result["images"]] == [D.MISSING, D.PRESENT, D.MISMATCH]
    assert result["images"][2]["previous_id"] == "sha256:other"
    assert result["loaded"] == []
    assert docker.loads() == []


def test_preload_loads_verifies_and_is_idempotent(hello):
    docker = fake.FakeDocker()
    first = D.preload(cli_for(docker), [hello], load=True, check_mode=False)
    assert first["loaded"] == [fake.FIXTURE_REF]
    assert first["images"][0]["status"] == D.LOADED
    assert first["images"][0]["id"] == fake.FIXTURE_ID
    second = D.preload(cli_for(docker), [hello], load=True, check_mode=False)
    assert second["loaded"] == []
    assert len(docker.loads()) == 1


def test_preload_check_mode_verifies_an_archive_already_there_but_loads_nothing(hello):
    docker = fake.FakeDocker()
    result = D.preload(cli_for(docker), [hello], load=True, check_mode=True)
    assert result["images"][0]["status"] == D.WOULD_LOAD
    assert docker.loads() == []
    with pytest.raises(D.PreloadError, match="the manifest says"):
        D.preload(cli_for(docker), [{**hello, "sha256": "1" * 64}], load=True, check_mode=True)
    gone = {**hello, "archive": "/not/copied/yet.tar"}
    assert D.preload(cli_for(docker), [gone], load=True, check_mode=True)["loaded"] == [fake.FIXTURE_REF]


def test_preload_never_loads_an_archive_with_the_wrong_sha256(hello):
    docker = fake.FakeDocker()
    with pytest.raises(D.PreloadError, match="Nothing was loaded"):
        D.preload(cli_for(docker), [{**hello, "sha256": "f" * 64}], load=True, check_mode=False)
    assert docker.loads() == []


def test_preload_fails_when_the_loaded_id_is_not_accepted_and_keeps_the_image(hello):
    docker = fake.FakeDocker(load_id="sha256:" + "9" * 64)
    with pytest.raises(D.PreloadError, match=r"after docker load its ID is sha256:9+, expected sha256:95462d"):
        D.preload(cli_for(docker), [hello], load=True, check_mode=False)
    assert docker.images[fake.FIXTURE_REF] == "sha256:" + "9" * 64
    assert not any(c[1:2] in (["rmi"], ["image"]) and "rm" in c for c in docker.calls)


# resolve_images


def test_resolve_images_takes_sha256_and_size_from_the_files_list_and_the_node_directory():
    images = [
        {"ref": "a:1", "id": "sha256:a", "archive": "images/a_1.tar", "group": "kubeadm"},
        {"ref": "b:1", "id": "sha256:b", "archive": "/abs/b.tar", "sha256": "own", "size": 7},
        {"ref": "c:1", "id": "sha256:c"},
    ]
    files = [
        {"path": "images/a_1.tar", "sha256": "aaa", "size": 10, "component": "image"},
        {"path": "/abs/b.tar", "sha256": "listed", "size": 99},
    ]
    a, b, c = D.resolve_images(images, files, "/var/cache/kubelab")
    assert a == {**images[0], "archive": "/var/cache/kubelab/images/a_1.tar", "sha256": "aaa", "size": 10}
    assert (b["archive"], b["sha256"], b["size"]) == ("/abs/b.tar", "own", 7)
    assert (c.get("archive"), c["sha256"], c["size"]) == (None, None, 0)
    assert images[0]["archive"] == "images/a_1.tar"


def test_a_relative_archive_without_archive_dir_is_refused_at_load_time(hello):
    (entry,) = D.resolve_images([{**hello, "archive": "images/hello.tar"}], [], None)
    with pytest.raises(D.PreloadError, match="is relative; give archive_dir"):
        D.check_archive(entry)


# the docker_image_preload module's logic


def params(images, **extra):
    """The module's parameters after argument parsing (defaults filled in)."""
    base = {"images": images, "files": [], "archive_dir": None, "load": True, "cache_dir": None, "min_free_mib": 0}
    base["docker_path"] = None
    base.update(extra)
    return base


def test_ensure_images_loads_the_missing_then_changes_nothing(hello):
    docker = fake.FakeDocker(root="/")
    first = D.ensure_images(cli_for(docker), params([hello]))
    assert (first["changed"], first["missing"], first["loaded"]) == (True, [fake.FIXTURE_REF], [fake.FIXTURE_REF])
    assert first["images"][0]["status"] == D.LOADED
    assert (first["docker_root_dir"], [s["path"] for s in first["space"]]) == ("/", ["/"])
    again = D.ensure_images(cli_for(docker), params([hello]), diff=True)
    assert (again["changed"], again["missing"], again["loaded"]) == (False, [], [])
    assert again["diff"] == {"before": {"present": [fake.FIXTURE_REF]}, "after": {"present": [fake.FIXTURE_REF]}}


def test_ensure_images_report_only_checks_the_cache_and_docker_root_and_loads_nothing(hello, tmp_path):
    docker = fake.FakeDocker(root=str(tmp_path))
    cache = str(tmp_path / "cache" / "new")
    result = D.ensure_images(cli_for(docker), params([hello], load=False, cache_dir=cache), diff=True)
    assert (result["changed"], result["missing"], result["loaded"]) == (False, [fake.FIXTURE_REF], [])
    assert [s["path"] for s in result["space"]] == [cache, str(tmp_path)]
    assert result["diff"] == {"before": {"present": []}, "after": {"present": []}}
    assert docker.loads() == []
    with pytest.raises(D.PreloadError, match=r"^not enough disk space for .* MiB needed"):
        D.ensure_images(cli_for(docker), params([hello], load=False, cache_dir=cache, min_free_mib=1024**3))


def test_ensure_images_check_mode_reports_what_it_would_load(hello):
    docker = fake.FakeDocker(root="/")
    result = D.ensure_images(cli_for(docker), params([hello]), check_mode=True, diff=True)
    assert (result["changed"], result["loaded"]) == (True, [fake.FIXTURE_REF])
    assert result["images"][0]["status"] == D.WOULD_LOAD
    assert result["diff"]["after"] == {"present": [fake.FIXTURE_REF]}
    assert docker.loads() == []


def test_unavailable_counts_every_image_missing_and_warns():
    result = D.unavailable(params([{"ref": "a:1"}, {"ref": "b:1"}]), "Docker is not installed yet")
    assert (result["changed"], result["missing"], result["loaded"]) == (True, ["a:1", "b:1"], ["a:1", "b:1"])
    assert result["images"][0] == {"ref": "a:1", "status": D.MISSING, "id": None, "accepted_ids": []}
    assert result["warnings"] == ["Docker is not installed yet; check mode counts every image as missing"]
    assert D.unavailable(params([{"ref": "a:1"}], load=False), "x")["changed"] is False


def test_image_preload_finds_docker_or_says_how_to_get_it(hello):
    docker = fake.FakeDocker(root="/")
    result = D.image_preload(FakeModule(docker, params([hello])))
    assert result["loaded"] == [fake.FIXTURE_REF]
    with pytest.raises(D.PreloadError, match=r"install Docker Engine first \(role docker_engine\)"):
        D.image_preload(FakeModule(docker, params([hello]), docker_path=None))
    planned = D.image_preload(FakeModule(docker, params([hello]), check_mode=True, docker_path=None))
    assert planned["warnings"] == ["the docker CLI is not installed yet; check mode counts every image as missing"]


def test_image_preload_with_a_stopped_docker_fails_except_in_check_mode(hello):
    docker = fake.FakeDocker(running=False)
    with pytest.raises(D.DockerUnavailable, match="systemctl start docker"):
        D.image_preload(FakeModule(docker, params([hello], docker_path="/opt/docker")))
    planned = D.image_preload(FakeModule(docker, params([hello]), check_mode=True))
    assert planned["missing"] == [fake.FIXTURE_REF]
    assert planned["warnings"][0].startswith("asking Docker for its root directory failed: ")
    assert {call[0] for call in docker.calls} == {"/opt/docker", "/usr/bin/docker"}
