"""Tests for plugins/module_utils/_token.py on kubeadm's recorded outputs."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _token, _token_ensure
from ansible_collections.kubelab.kubeadm.plugins.module_utils._token import TokenError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "kubeadm"))
from fake_kubeadm import NOW, fixture, load_objects, render

UTC = datetime.UTC
LISTINGS = ["token_list_v1alpha1.json", "token_list_v1alpha2.json", "token_list_v1alpha3.json"]
PROXY = "Proxy for managing TTL for the kubeadm-certs secret"


# --- format and generation ---------------------------------------------------------------------


def test_generate_token_has_kubeadms_format_and_is_random():
    tokens = {_token.generate_token() for _draw in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert _token.TOKEN_RE.match(token)
    # every character of the alphabet shows up over 200 * 22 draws
    assert set("".join(tokens).replace(".", "")) == set(_token.TOKEN_ALPHABET)


def test_recorded_kubeadm_token_generate_matches_our_pattern():
    assert _token.TOKEN_RE.match(fixture("token_generate.txt").strip())


@pytest.mark.parametrize("token", ["abcdef.0123456789abcdef", "000000.zzzzzzzzzzzzzzzz"])
def test_split_token(token):
    assert _token.split_token(token) == tuple(token.split("."))


@pytest.mark.parametrize(
    "token",
    [
        "",
        None,
        "abcdef",
        "abcdef.0123456789abcde",
        "abcdef.0123456789abcdefg",
        "ABCDEF.0123456789abcdef",
        "abcde.0123456789abcdef1",
        "abcdef:0123456789abcdef",
        "abcdef.0123456789abcdef\n",
        " abcdef.0123456789abcdef",
    ],
)
def test_split_token_rejects_malformed(token):
    with pytest.raises(TokenError, match=r"wrong format.*\[a-z0-9\]\{6\}\.\[a-z0-9\]\{16\}"):
        _token.split_token(token)


def test_check_token_id():
    assert _token.check_token_id("abc123") == "abc123"
    for bad in ("abc12", "abc1234", "ABC123", "abc123\n", None):
        with pytest.raises(TokenError, match=r"token_id"):
            _token.check_token_id(bad)


def test_check_usages():
    assert _token.check_usages(["signing", "authentication", "signing"]) == ["authentication", "signing"]
    with pytest.raises(TokenError, match=r"must not be empty"):
        _token.check_usages([])
    with pytest.raises(TokenError, match=r"unknown token usage.*bogus.*signing, authentication"):
        _token.check_usages(["signing", "bogus"])


@pytest.mark.parametrize(
    "group",
    [
        "system:bootstrappers:kubeadm:default-node-token",
        "system:bootstrappers:a",
        "system:bootstrappers:x-1:y",
        "system:bootstrappers:" + "a" * 256,
    ],
)
def test_check_groups_accepts(group):
    assert _token.check_groups([group], ["authentication"]) == [group]


@pytest.mark.parametrize(
    "group",
    [
        "system:bootstrappers:",
        "system:bootstrappers:a:",
        "system:bootstrappers:a-",
        "system:bootstrappers:A",
        "system:bootstrapper:a",
        "system:masters",
        "system:bootstrappers:" + "a" * 257,
        "system:bootstrappers:a b",
    ],
)
def test_check_groups_rejects(group):
    with pytest.raises(TokenError, match=r"bad token group.*system:bootstrappers:\[a-z0-9:-\]"):
        _token.check_groups([group], ["authentication"])


def test_check_groups_needs_authentication_and_a_group():
    with pytest.raises(TokenError, match=r"add authentication to usages"):
        _token.check_groups(["system:bootstrappers:a"], ["signing"])
    with pytest.raises(TokenError, match=r"groups must not be empty"):
        _token.check_groups([], ["authentication"])


# --- durations ---------------------------------------------------------------------------------

DURATIONS = {
    "24h": 86400,
    "1h30m": 5400,
    "90s": 90,
    "1.5h": 5400,
    ".5h": 1800,
    "1.h": 3600,
    "0": 0,
    "-0": 0,
    "+5m": 300,
    "300ms": Fraction(3, 10),
    "1us": Fraction(1, 10**6),
    "1\u00b5s": Fraction(1, 10**6),
    "1\u03bcs": Fraction(1, 10**6),
    "7ns": Fraction(7, 10**9),
    "2h45m30.5s": 9930.5,
    "0s": 0,
    "0h0m": 0,
    "2562047h": 2562047 * 3600,
    " 10m ": 600,
}
BAD_DURATIONS = ["", "h", "1", "1d", "1x", ".", "1h-30m", "--1h", "+", "1.5.5h", "2562048h", "1h 30m"]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS.items())
def test_parse_duration(text, seconds):
    assert _token.parse_duration(text) == seconds


@pytest.mark.parametrize("text", BAD_DURATIONS)
def test_parse_duration_rejects(text):
    with pytest.raises(TokenError, match=r'ttl .*duration like "24h", "1h30m", "90s" or "0"'):
        _token.parse_duration(text)


def test_parse_duration_refuses_negative_ttls_that_kubeadm_would_make_eternal():
    with pytest.raises(TokenError, match=r"negative: kubeadm would create a token that never expires"):
        _token.parse_duration("-1h", "ttl")


GO_PROGRAM = """package main

import (
\t"fmt"
\t"os"
\t"time"
)

func main() {
\tfor _, arg := range os.Args[1:] {
\t\td, err := time.ParseDuration(arg)
\t\tif err != nil {
\t\t\tfmt.Println("ERR")
\t\t} else {
\t\t\tfmt.Println(int64(d))
\t\t}
\t}
}
"""


@pytest.mark.skipif(not shutil.which("go"), reason="no Go toolchain to compare with time.ParseDuration")
def test_parse_duration_agrees_with_go(tmp_path):
    """The same inputs through Go's own time.ParseDuration (which kubeadm uses for --ttl)."""
    (tmp_path / "main.go").write_text(GO_PROGRAM)
    (tmp_path / "go.mod").write_text("module durations\n\ngo 1.21\n")
    inputs = [k.strip() for k in DURATIONS] + [b for b in BAD_DURATIONS if b] + ["-1h"]
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local", CGO_ENABLED="0")
    binary = tmp_path / "durations"
    subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=tmp_path, env=env, check=True, timeout=600, capture_output=True
    )
    out = subprocess.run([str(binary), *inputs], check=True, capture_output=True, text=True).stdout.split()
    for text, go in zip(inputs, out, strict=True):
        try:
            ours = _token.parse_duration(text)
        except TokenError:
            # we refuse what Go refuses, and on purpose also negative durations
            assert go == "ERR" or int(go) < 0, text
        else:
            assert go != "ERR", text
            assert int(go) == int(ours * 10**9), text


def test_format_duration():
    assert _token.format_duration(0) == "0s"
    assert _token.format_duration(86400) == "24h"
    assert _token.format_duration(5400) == "1h30m"
    assert _token.format_duration(90) == "1m30s"
    assert _token.format_duration(3661) == "1h1m1s"


# --- times -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-29T09:30:00Z", "2026-11-29T09:30:00Z"),
        ("2026-11-29T18:00:00+08:00", "2026-11-29T10:00:00Z"),
        ("2026-11-29t09:30:00.123456789z", "2026-11-29T09:30:00Z"),
        ("2026-11-29 04:30:00-05:00", "2026-11-29T09:30:00Z"),
    ],
)
def test_parse_and_format_rfc3339(text, utc):
    assert _token.format_rfc3339(_token.parse_rfc3339(text)) == utc


@pytest.mark.parametrize("text", ["2026-11-29", "2026-11-29T09:30:00", "tomorrow", "2026-02-30T00:00:00Z", None])
def test_parse_rfc3339_rejects(text):
    with pytest.raises(TokenError, match=r"expires"):
        _token.parse_rfc3339(text)


def test_utcnow_is_aware_utc():
    now = _token.utcnow()
    assert now.tzinfo is not None
    assert now.utcoffset() == datetime.timedelta(0)


# --- kubeadm token list -o json ----------------------------------------------------------------


def test_fake_kubeadm_renders_exactly_like_kubeadm():
    """The module tests' kubeadm stand-in prints byte-for-byte what the real binary printed."""
    for name in LISTINGS:
        assert render(load_objects(fixture(name))) == fixture(name)


@pytest.mark.parametrize("name", LISTINGS)
def test_parse_token_list_every_output_version(name):
    tokens = _token.parse_token_list(fixture(name))
    by_id = {t["token_id"]: t for t in tokens}
    assert list(by_id) == ["abcdef", "jn7k2m", "kl8s2x", "old123", "prx9kc", "tz0800"]
    init = by_id["abcdef"]
    assert init["token"] == "abcdef.0123456789abcdef"
    assert init["description"] == "The default bootstrap token generated by 'kubeadm init'."
    assert init["usages"] == ["authentication", "signing"]
    assert init["groups"] == ["system:bootstrappers:kubeadm:default-node-token"]
    assert init["expires"] == datetime.datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
    assert by_id["jn7k2m"]["groups"] == [
        "system:bootstrappers:kubeadm:default-node-token",
        "system:bootstrappers:kubelab:workers",
    ]
    assert by_id["kl8s2x"]["expires"] is None  # no "expires" key: never expires
    proxy = by_id["prx9kc"]
    assert (proxy["usages"], proxy["groups"], proxy["description"]) == ([], [], PROXY)
    assert _token.is_upload_certs_proxy(proxy)
    assert not any(_token.is_upload_certs_proxy(t) for t in tokens if t is not proxy)
    assert by_id["tz0800"]["expires"] == datetime.datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_parse_token_list_empty_output():
    assert fixture("token_list_empty.json") == ""
    assert _token.parse_token_list(fixture("token_list_empty.json")) == []
    assert _token.parse_token_list("\n") == []


def test_parse_token_list_skips_stray_lines():
    text = (
        "[dryrun] Would perform action LIST\nW1128 10:00:00.1 1 x.go:1] {not json}\n"
        + fixture("token_list_v1alpha3.json")
        + "I1128 trailing klog line\n"
    )
    assert len(_token.parse_token_list(text)) == 6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{\n    "kind": "Images",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n    "images": []\n}\n',
            "kind 'Images'",
        ),
        (
            '{\n    "kind": "BootstrapToken",\n    "apiVersion": "v1",\n    "token": "abcdef.0123456789abcdef"\n}\n',
            "apiVersion 'v1'",
        ),
        (
            '{\n    "kind": "BootstrapToken",\n'
            '    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n    "token": "x"\n}\n',
            "without a valid token",
        ),
        (
            '{\n    "kind": "BootstrapToken",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n'
            '    "token": "abcdef.0123456789abcdef",\n    "usages": "signing"\n}\n',
            "usages of token abcdef",
        ),
        (
            '{\n    "kind": "BootstrapToken",\n    "apiVersion": "output.kubeadm.k8s.io/v1alpha3",\n'
            '    "token": "abcdef.0123456789abcdef",\n    "expires": "soon"\n}\n',
            "RFC3339",
        ),
        ('  {"kind": "BootstrapToken"}\n', "no BootstrapToken object could be read"),
    ],
)
def test_parse_token_list_rejects_unexpected_output(text, message):
    with pytest.raises(TokenError, match=message):
        _token.parse_token_list(text)


def test_token_info_and_state():
    tokens = {t["token_id"]: t for t in _token.parse_token_list(fixture("token_list_v1alpha3.json"))}
    assert _token.token_info(tokens["abcdef"], NOW) == {
        "token_id": "abcdef",
        "description": "The default bootstrap token generated by 'kubeadm init'.",
        "usages": ["authentication", "signing"],
        "groups": ["system:bootstrappers:kubeadm:default-node-token"],
        "expires": "2026-11-29T09:30:00Z",
        "expired": False,
        "remaining_seconds": 23 * 3600 + 1800,
        "is_upload_certs_proxy": False,
    }
    assert _token.token_info(tokens["old123"], NOW)["expired"] is True
    assert _token.token_info(tokens["old123"], NOW)["remaining_seconds"] == 0
    assert _token.token_info(tokens["kl8s2x"], NOW)["remaining_seconds"] is None
    assert _token.token_info(tokens["kl8s2x"], NOW)["expired"] is False
    assert _token.token_info(tokens["prx9kc"], NOW)["is_upload_certs_proxy"] is True
    assert _token.token_state(None) == {"state": "absent"}
    state = _token.token_state(tokens["jn7k2m"])
    assert state["expires"] == "2026-11-29T09:00:00Z"
    assert "token" not in state
    assert "a1b2c3d4e5f6g7h8" not in repr(state)


# --- the request -------------------------------------------------------------------------------


def request(**params):
    base = {
        "token": None,
        "ttl": "24h",
        "min_ttl": "10m",
        "description": "kubelab join token",
        "usages": ["signing", "authentication"],
        "groups": ["system:bootstrappers:kubeadm:default-node-token"],
    }
    base.update(params)
    return _token_ensure.TokenRequest(base)


def test_request_validation():
    with pytest.raises(TokenError, match=r"min_ttl .2h. is longer than ttl .1h."):
        request(ttl="1h", min_ttl="2h")
    with pytest.raises(TokenError, match=r"shorter than a second"):
        request(ttl="500ms", min_ttl="0")
    with pytest.raises(TokenError, match=r"wrong format"):
        request(token="nope")
    with pytest.raises(TokenError, match=r"min_ttl '10x'"):
        request(min_ttl="10x")
    assert request(ttl="0", min_ttl="100h").ttl == 0  # a token that never expires outlives any min_ttl


def test_request_reuse_rules():
    tokens = {t["token_id"]: t for t in _token.parse_token_list(fixture("token_list_v1alpha3.json"))}
    workers = ["system:bootstrappers:kubelab:workers", "system:bootstrappers:kubeadm:default-node-token"]
    req = request(groups=workers)
    assert req.reusable(tokens["jn7k2m"], NOW)  # 23h left of 24h, groups in another order
    assert not req.reusable(tokens["old123"], NOW)  # other groups, and expired
    assert not request().reusable(tokens["old123"], NOW)  # expired
    assert not request(groups=workers, min_ttl="23h30m").reusable(tokens["jn7k2m"], NOW)  # too little left
    assert not request(groups=workers, ttl="1h", min_ttl="1m").reusable(tokens["jn7k2m"], NOW)  # outlives 1h
    assert not request(groups=workers, usages=["authentication"]).reusable(tokens["jn7k2m"], NOW)
    assert not request(groups=workers, description="other").reusable(tokens["jn7k2m"], NOW)
    never = request(description="lab token that never expires", ttl="0")
    assert never.reusable(tokens["kl8s2x"], NOW)
    assert not request(description="lab token that never expires").reusable(tokens["kl8s2x"], NOW)
    assert not never.reusable(tokens["abcdef"], NOW)
    proxy = dict(tokens["prx9kc"], usages=["authentication"], groups=["system:bootstrappers:x"])
    assert not _token.is_upload_certs_proxy(proxy)


def test_request_create_args_hold_no_secret():
    args = _token_ensure.TokenRequest.create_args("/tmp/x/token.yaml")
    assert args == ["token", "create", "--config=/tmp/x/token.yaml"]


def test_request_config_document():
    asked = request(description="-not a flag", ttl="1.5s", min_ttl="1s")
    docs = asked.config_document("abcdef.0123456789abcdef", "v1.36.3")
    init, cluster = (json.loads(doc) for doc in docs.split("\n---\n"))
    assert init["bootstrapTokens"] == [{
        "token": "abcdef.0123456789abcdef",
        "ttl": "1500ms",
        "usages": ["authentication", "signing"],
        "groups": ["system:bootstrappers:kubeadm:default-node-token"],
        "description": "-not a flag",
    }]
    assert cluster == {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration",
                       "kubernetesVersion": "v1.36.3"}
    never = json.loads(request(description="", ttl="0").config_document("abcdef.0123456789abcdef", "v1.36.3")
                       .split("\n---\n")[0])["bootstrapTokens"][0]
    assert (never["ttl"], "description" in never) == ("0s", False)
    assert request(ttl="1h30m").ttl_value() == "1h30m"


def test_private_file_is_0600_and_removed():
    with _token_ensure.private_file("secret") as path:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        with open(path) as handle:
            assert handle.read() == "secret"
    assert not os.path.exists(os.path.dirname(path))


def test_request_planned():
    planned = request().planned(None, NOW)
    assert planned["expires"] == NOW + datetime.timedelta(hours=24)
    assert request(ttl="0").planned("abcdef", NOW)["expires"] is None
