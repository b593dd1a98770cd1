# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The logic of the kubeadm_token module: a bootstrap token present (reused or created) or absent.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Idempotent by token id, with honest ``changed``, check mode and a diff without secrets; a token
this run created is deleted again when anything after its creation fails (or named in the error
when that delete fails too). The token format, durations and list parsing are in _token.py.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from contextlib import contextmanager

from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    KUBECONFIG_HINT,
    KubeadmError,
    check_readable_file,
)
from ansible_collections.kubelab.kubeadm.plugins.module_utils._token import (
    UTC,
    TokenError,
    check_groups,
    check_token_id,
    check_usages,
    format_duration,
    format_rfc3339,
    generate_token,
    is_upload_certs_proxy,
    list_tokens,
    parse_ttls,
    split_token,
    token_state,
    utcnow,
)

# The kubeadm configuration API the token's file is written in (v1beta4: kubeadm 1.31 and later).
CONFIG_API_VERSION = "kubeadm.k8s.io/v1beta4"

# Slack for clock differences between this host and kubeadm's (same host, in practice).
CLOCK_SLACK_SECONDS = 60

# ---------------------------------------------------------------------------------------------
# Desired state
# ---------------------------------------------------------------------------------------------


class TokenRequest:
    """The validated options of kubeadm_token (state=present)."""

    def __init__(self, params):
        self.token = params.get("token")
        if self.token is not None:
            self.token_id, self.secret = split_token(self.token)
        else:
            self.token_id = self.secret = None
        self.ttl, self.min_ttl = parse_ttls(params.get("ttl"), params.get("min_ttl"))
        self.description = params.get("description") or ""
        self.usages = check_usages(params.get("usages"))
        self.groups = check_groups(params.get("groups"), self.usages)

    def matches(self, token):
        """Same description, usages and groups (order does not matter)."""
        return (
            token["description"] == self.description
            and sorted(set(token["usages"])) == self.usages
            and sorted(set(token["groups"])) == self.groups
        )

    def lifetime_ok(self, token, now):
        """A token the request accepts as is: its lifetime fits ttl and min_ttl.

        ttl "0" wants a token that never expires. Otherwise the token must expire, have at
        least min_ttl left and not outlive the requested ttl (a 30-day token is no answer to a
        request for 1h).
        """
        if not self.ttl:
            return token["expires"] is None
        if token["expires"] is None:
            return False
        left = (token["expires"] - now).total_seconds()
        return self.min_ttl <= left <= self.ttl + CLOCK_SLACK_SECONDS

    def reusable(self, token, now):
        return not is_upload_certs_proxy(token) and self.matches(token) and self.lifetime_ok(token, now)

    def ttl_value(self):
        """The ttl as a Go duration for kubeadm's configuration ("24h", "1h30m", "1500ms", "0s")."""
        if self.ttl == int(self.ttl):
            return format_duration(self.ttl)
        return f"{int(self.ttl * 1000)}ms"

    def config_document(self, token, kubernetes_version):
        """The kubeadm configuration `kubeadm token create --config` reads the token from.

        The secret goes to kubeadm in a file only this user can read, never on its command line
        (where every user of the host sees it in the process list). JSON is YAML, so kubeadm
        reads these documents as they are. The ClusterConfiguration only names kubeadm's own
        version: without one kubeadm would default to "stable-1" and look that up online.
        """
        bootstrap = {"token": token, "ttl": self.ttl_value(), "usages": list(self.usages), "groups": list(self.groups)}
        if self.description:
            bootstrap["description"] = self.description
        init = {"apiVersion": CONFIG_API_VERSION, "kind": "InitConfiguration", "bootstrapTokens": [bootstrap]}
        cluster = {
            "apiVersion": CONFIG_API_VERSION,
            "kind": "ClusterConfiguration",
            "kubernetesVersion": kubernetes_version,
        }
        return json.dumps(init, indent=2) + "\n---\n" + json.dumps(cluster, indent=2) + "\n"

    @staticmethod
    def create_args(config_path):
        """argv after `kubeadm`: everything about the token is in the file (kubeadm refuses to mix
        --config with --ttl, --usages, ... anyway)."""
        return ["token", "create", "--config=" + config_path]

    def planned(self, token_id, now):
        return {
            "token_id": token_id,
            "description": self.description,
            "usages": list(self.usages),
            "groups": list(self.groups),
            "expires": now + datetime.timedelta(seconds=float(self.ttl)) if self.ttl else None,
        }


# ---------------------------------------------------------------------------------------------
# Module logic
# ---------------------------------------------------------------------------------------------


def kubeadm_version(runner):
    """kubeadm's own version ("v1.36.3"), for the ClusterConfiguration of the token's file."""
    _rc, out, _err = runner.run(["version", "-o", "short"], action="reading the kubeadm version", cluster=False)
    version = out.strip()
    if not version.startswith("v") or not version[1:2].isdigit():
        raise TokenError(f"`kubeadm version -o short` printed {version!r}, not a version like v1.36.3")
    return version


@contextmanager
def private_file(content):
    """A file only this user can read (0600 in a fresh 0700 directory), removed afterwards."""
    directory = tempfile.mkdtemp(prefix="kubelab-token-")
    try:
        path = os.path.join(directory, "token.yaml")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _find(tokens, token_id):
    for token in tokens:
        if token["token_id"] == token_id:
            return token
    return None


def _pick_reusable(tokens, request, now):
    candidates = [t for t in tokens if request.reusable(t, now)]
    if not candidates:
        return None
    # The longest-lived first; a never-expiring token (ttl "0" requests only) sorts first too.
    far = datetime.datetime.max.replace(tzinfo=UTC)
    candidates.sort(key=lambda t: (t["expires"] or far, t["token_id"]), reverse=True)
    return candidates[0]


def _delete(runner, token_id):
    runner.run(["token", "delete", token_id], action=f"deleting bootstrap token {token_id}")


def _create(runner, request, token, token_id):
    """Create the token, read it back, and never leave a half-made token behind unreported."""
    version = kubeadm_version(runner)
    try:
        with private_file(request.config_document(token, version)) as config_path:
            runner.run(request.create_args(config_path), action=f"creating bootstrap token {token_id}")
    except KubeadmError as exc:
        if "already exists" in exc.details.get("stderr", ""):
            # Someone else created this id since it was listed: not ours to delete.
            exc.msg += f" A token with id {token_id} was created by someone else meanwhile; run the task again."
        else:
            _cleanup_after_failure(runner, token_id, exc, maybe_created=True)
        raise
    try:
        created = _find(list_tokens(runner), token_id)
        if created is None:
            raise TokenError(
                f"kubeadm reported bootstrap token {token_id} created, but `kubeadm token list` does not show it"
            )
        if created["token"] != token or not request.matches(created):
            raise TokenError(
                f"bootstrap token {token_id} as created does not match the request (usages {created['usages']},"
                f" groups {created['groups']}, description {created['description']!r})"
            )
        if not request.lifetime_ok(created, utcnow()):
            raise TokenError(
                f"bootstrap token {token_id} as created expires at {token_state(created)['expires']}, which does"
                " not fit ttl; check the clocks of this host and the control plane"
            )
    except KubeadmError as exc:
        _cleanup_after_failure(runner, token_id, exc, maybe_created=False)
        raise
    return created


def _cleanup_after_failure(runner, token_id, exc, maybe_created):
    """Delete the token this run created; if that fails, name the token in the error."""
    if maybe_created:
        # kubeadm failed; the Secret may still have been written (e.g. a timeout after the write).
        try:
            present = _find(list_tokens(runner), token_id) is not None
        except KubeadmError:
            exc.msg += (
                f" Bootstrap token {token_id} may have been created: check `kubeadm token list` and delete it"
                f" with `kubeadm token delete {token_id}`."
            )
            exc.details["token_id"] = token_id
            return
        if not present:
            return
    try:
        _delete(runner, token_id)
    except KubeadmError as delete_exc:
        exc.msg += (
            f" Bootstrap token {token_id} was created but could not be deleted again ({delete_exc.msg}):"
            f" delete it with `kubeadm token delete {token_id}`."
        )
        exc.details["token_id"] = token_id
        return
    exc.msg += f" The bootstrap token {token_id} this run had created was deleted again."


def ensure_token(runner, params, check_mode=False, diff=False):
    """kubeadm_token: the whole run. Returns the result dict; raises KubeadmError."""
    if (params.get("state") or "present") == "absent":
        return _ensure_absent(runner, params, check_mode, diff)
    request = TokenRequest(params)
    check_readable_file(params["kubeconfig"], "kubeconfig", KUBECONFIG_HINT)
    if request.token:
        runner.secrets.add(request.token)
    now = utcnow()
    tokens = list_tokens(runner)
    result = {"changed": False, "reused": False, "token": None, "token_id": None, "expires": None,
              "warnings": []}

    if request.token:
        existing = _find(tokens, request.token_id)
        if existing is not None and existing["token"] != request.token:
            raise TokenError(
                f"a bootstrap token with id {request.token_id} already exists with a different secret: delete it"
                f" first (state=absent, token_id={request.token_id}) or choose another token"
            )
        if existing is not None and not request.reusable(existing, now):
            return _replace_or_create(runner, request, result, existing, check_mode=check_mode, diff=diff, now=now,
                                      taken=set())
    else:
        existing = _pick_reusable(tokens, request, now)
    if existing is not None:
        return _finish(result, existing, existing, reused=True, diff=diff)
    return _replace_or_create(runner, request, result, None, check_mode=check_mode, diff=diff, now=now,
                              taken={t["token_id"] for t in tokens})


def _replace_or_create(runner, request, result, before, *, check_mode, diff, now, taken):
    """Create the requested token (replacing `before`, a token with the same id, if given)."""
    result["changed"] = True
    if before is not None:
        verb = "would be" if check_mode else "was"
        result["warnings"].append(
            f"bootstrap token {before['token_id']} {verb} replaced: it did not fit ttl/min_ttl or had other usages,"
            " groups or description"
        )
    if check_mode:
        planned = request.planned(request.token_id, now)
        result["expires"] = format_rfc3339(planned["expires"]) if planned["expires"] else None
        result["token_id"] = request.token_id
        result["token"] = request.token
        if diff:
            after = token_state(planned)
            after["token_id"] = after["token_id"] or "(generated when applied)"
            result["diff"] = {"before": token_state(before), "after": after}
        return result
    new_token = request.token or generate_token()
    while new_token.split(".", 1)[0] in taken:  # a generated id that exists already: 1 in 2 billion
        new_token = generate_token()
    new_id = new_token.split(".", 1)[0]
    runner.secrets.add(new_token)
    if before is not None:
        _delete(runner, before["token_id"])
    created = _create(runner, request, new_token, new_id)
    return _finish(result, created, before, reused=False, diff=diff)


def _finish(result, token, before, reused, diff):
    result["reused"] = reused
    result["token"] = token["token"]
    result["token_id"] = token["token_id"]
    result["expires"] = format_rfc3339(token["expires"]) if token["expires"] else None
    if diff:
        result["diff"] = {"before": token_state(before), "after": token_state(token)}
    return result


def _ensure_absent(runner, params, check_mode, diff):
    token = params.get("token")
    token_id = params.get("token_id")
    if token:
        token_id_of_token, _secret = split_token(token)
        if token_id and token_id != token_id_of_token:
            raise TokenError(
                f"token and token_id name different tokens ({token_id_of_token} and {token_id}): give one of them"
            )
        token_id = token_id_of_token
        runner.secrets.add(token)
    elif token_id:
        check_token_id(token_id)
    else:
        raise TokenError("state=absent needs token or token_id: the token to delete")
    check_readable_file(params["kubeconfig"], "kubeconfig", KUBECONFIG_HINT)
    existing = _find(list_tokens(runner), token_id)
    result = {"changed": False, "reused": False, "token": None, "token_id": token_id, "expires": None}
    if existing is not None and token and existing["token"] != token:
        result["warnings"] = [
            f"bootstrap token id {token_id} exists with a different secret, so the given token is already absent;"
            " nothing deleted (use token_id to delete whatever token has this id)"
        ]
        existing = None
    if existing is not None:
        result["changed"] = True
        if not check_mode:
            _delete(runner, token_id)
    if diff:
        result["diff"] = {"before": token_state(existing), "after": token_state(None)}
    return result
