# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bootstrap tokens: format, generation, Go durations, ``kubeadm token list -o json`` parsing,
and the logic of the kubeadm_token / kubeadm_token_info modules.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Facts this follows (k8s.io/cluster-bootstrap/token/api/types.go and kubeadm's token.go):
a token is ``[a-z0-9]{6}.[a-z0-9]{16}``; ``kubeadm token list -o json`` prints one pretty
(4-space) JSON object per token, concatenated, kind ``BootstrapToken`` with an
``output.kubeadm.k8s.io/*`` apiVersion; ``expires`` is missing for tokens that never expire;
usages and groups are missing when empty (the upload-certs proxy token).
"""

from __future__ import annotations

import datetime
import re
import secrets
import string
from fractions import Fraction

from ansible_collections.kubelab.kubeadm.plugins.module_utils._command import redact
from ansible_collections.kubelab.kubeadm.plugins.module_utils._kubeadm import (
    KUBECONFIG_HINT,
    OUTPUT_API_PREFIX,
    KubeadmError,
    check_readable_file,
    iter_json_objects,
)

TOKEN_RE = re.compile(r"\A([a-z0-9]{6})\.([a-z0-9]{16})\Z")
TOKEN_ID_RE = re.compile(r"\A([a-z0-9]{6})\Z")
GROUP_RE = re.compile(r"\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\Z")
TOKEN_ALPHABET = string.digits + string.ascii_lowercase
KNOWN_USAGES = ("signing", "authentication")
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
UPLOAD_CERTS_PROXY_DESCRIPTION = "Proxy for managing TTL for the kubeadm-certs secret"

# Go's time.Duration is an int64 of nanoseconds: about 292 years.
_MAX_DURATION_SECONDS = Fraction(2**63 - 1, 10**9)
_DURATION_UNITS = {
    "ns": Fraction(1, 10**9),
    "us": Fraction(1, 10**6),
    "\u00b5s": Fraction(1, 10**6),  # micro sign
    "\u03bcs": Fraction(1, 10**6),  # greek mu
    "ms": Fraction(1, 10**3),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
_DURATION_NUMBER_RE = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_DURATION_UNIT_RE = re.compile(r"[^0-9.]+")
_RFC3339_RE = re.compile(
    r"\A(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)
# Slack for clock differences between this host and kubeadm's (same host, in practice).
_CLOCK_SLACK_SECONDS = 60
# datetime.UTC is Python 3.11+; module code runs on the managed node's Python.
UTC = datetime.timezone.utc  # noqa: UP017 - see above


class TokenError(KubeadmError):
    """Bad token input or unparseable kubeadm token output."""


# ---------------------------------------------------------------------------------------------
# Format and generation
# ---------------------------------------------------------------------------------------------


def generate_token():
    """A new token in kubeadm's format, from the OS CSPRNG (like GenerateBootstrapToken)."""
    token_id = "".join(secrets.choice(TOKEN_ALPHABET) for _draw in range(6))
    secret = "".join(secrets.choice(TOKEN_ALPHABET) for _draw in range(16))
    return f"{token_id}.{secret}"


def split_token(token):
    """Return (id, secret) of a full token; TokenError naming the format when it is malformed."""
    match = TOKEN_RE.match(token or "")
    if not match:
        raise TokenError(
            "token has the wrong format: a bootstrap token is 6 characters, a dot and 16 characters,"
            " all lower-case letters and digits ([a-z0-9]{6}.[a-z0-9]{16}, e.g. the output of"
            " `kubeadm token generate`); fix the token option or leave it out to have one generated"
        )
    return match.group(1), match.group(2)


def check_token_id(token_id):
    if not TOKEN_ID_RE.match(token_id or ""):
        raise TokenError(
            f"token_id {token_id!r} has the wrong format: it is the 6 characters before the dot of a token"
            " ([a-z0-9]{6}); fix token_id"
        )
    return token_id


def check_usages(usages):
    if not usages:
        raise TokenError("usages must not be empty: give signing, authentication or both")
    unknown = [u for u in usages if u not in KNOWN_USAGES]
    if unknown:
        raise TokenError(
            f"unknown token usage(s) {', '.join(unknown)}: valid usages are {', '.join(KNOWN_USAGES)}"
        )
    return sorted(set(usages))


def check_groups(groups, usages):
    if not groups:
        raise TokenError(
            f"groups must not be empty: kubeadm puts its default group ({DEFAULT_GROUP}) on a token created"
            " without groups, so give that group or your own system:bootstrappers:* groups"
        )
    bad = ", ".join(repr(g) for g in groups if not GROUP_RE.match(g))
    if bad:
        raise TokenError(
            f"bad token group(s) {bad}: each extra group must match {GROUP_RE.pattern} (lower-case letters,"
            f" digits, ':' and '-' after 'system:bootstrappers:', not ending in ':' or '-'), e.g. {DEFAULT_GROUP}"
        )
    if "authentication" not in usages:
        raise TokenError(
            "groups need the authentication usage: kubeadm refuses extra groups on a token that"
            " cannot authenticate; add authentication to usages"
        )
    return sorted(set(groups))


# ---------------------------------------------------------------------------------------------
# Durations and times
# ---------------------------------------------------------------------------------------------


def parse_duration(value, option="ttl"):
    """Parse a Go duration ("24h", "1h30m", "90s", "1.5h", "0") into seconds (a Fraction).

    Follows time.ParseDuration: an optional sign, then one or more <number><unit> with units
    ns, us (or µs), ms, s, m, h; a bare "0" is zero. Negative values are refused: kubeadm
    would write no expiration at all for them, i.e. a token that never expires.
    """
    text = str(value).strip() if value is not None else ""
    hint = f'{option} must be a duration like "24h", "1h30m", "90s" or "0"'
    if not text:
        raise TokenError(f"{option} is empty: {hint}")
    rest = text
    negative = False
    if rest[0] in "+-":
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return Fraction(0)
    if not rest:
        raise TokenError(f"{option} {text!r} is not a duration: {hint}")
    total = Fraction(0)
    while rest:
        number = _DURATION_NUMBER_RE.match(rest)
        whole, frac = number.group(1), number.group(2)
        if not whole and not frac:
            raise TokenError(f"{option} {text!r} is not a duration: {hint}")
        rest = rest[number.end():]
        unit = _DURATION_UNIT_RE.match(rest)
        if not unit:
            raise TokenError(f"{option} {text!r} has a number without a unit: {hint}")
        if unit.group(0) not in _DURATION_UNITS:
            raise TokenError(
                f"{option} {text!r} has an unknown unit {unit.group(0)!r}: use h, m, s, ms, us or ns ({hint})"
            )
        rest = rest[unit.end():]
        amount = Fraction(int(whole or "0"))
        if frac:
            amount += Fraction(int(frac), 10 ** len(frac))
        total += amount * _DURATION_UNITS[unit.group(0)]
    if total > _MAX_DURATION_SECONDS:
        raise TokenError(f"{option} {text!r} is too long: Go durations stop at about 292 years ({hint})")
    if negative and total:
        raise TokenError(
            f"{option} {text!r} is negative: kubeadm would create a token that never expires; use a positive"
            ' duration, or "0" if you really want a token that never expires'
        )
    return total


def format_duration(seconds):
    """Seconds as a short Go-style duration ("24h", "1h30m", "90s" -> "1m30s")."""
    seconds = int(seconds)
    if seconds == 0:
        return "0s"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs:
        out += f"{secs}s"
    return out


def utcnow():
    return datetime.datetime.now(UTC)


def parse_rfc3339(value):
    """Parse an RFC3339 time (any offset, optional fraction) into an aware datetime."""
    match = _RFC3339_RE.match(value or "")
    if not match:
        raise TokenError(f"expires {value!r} is not an RFC3339 time")
    year, month, day, hour, minute, second = (int(x) for x in match.groups()[:6])
    micro = int((match.group(7) or "0")[:6].ljust(6, "0"))
    offset = match.group(8)
    if offset in ("Z", "z"):
        tz = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as exc:
        raise TokenError(f"expires {value!r} is not a valid time: {exc}") from None


def format_rfc3339(when):
    """UTC RFC3339 with a Z, whole seconds: what kubeadm writes and prints."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# kubeadm token list -o json
# ---------------------------------------------------------------------------------------------


def _string_list(obj, key, where):
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenError(f"unexpected `kubeadm token list -o json` output: {key} of {where} is not a list of strings")
    return list(value)


def parse_token_list(text):
    """Parse ``kubeadm token list -o json`` output into token dicts.

    Each dict: token (full id.secret), token_id, description, usages, groups, expires
    (aware datetime or None = never expires).
    """
    tokens = []
    for obj in iter_json_objects(text):
        api_version = obj.get("apiVersion") or ""
        if obj.get("kind") != "BootstrapToken" or not api_version.startswith(OUTPUT_API_PREFIX):
            raise TokenError(
                "unexpected `kubeadm token list -o json` output: an object of kind {!r}, apiVersion {!r}"
                " where a BootstrapToken ({}*) was expected".format(obj.get("kind"), api_version, OUTPUT_API_PREFIX)
            )
        value = obj.get("token")
        if not isinstance(value, str) or not TOKEN_RE.match(value):
            raise TokenError("unexpected `kubeadm token list -o json` output: a BootstrapToken without a valid token")
        token_id = value.split(".", 1)[0]
        where = f"token {token_id}"
        expires = obj.get("expires")
        tokens.append({
            "token": value,
            "token_id": token_id,
            "description": obj.get("description") or "",
            "usages": _string_list(obj, "usages", where),
            "groups": _string_list(obj, "groups", where),
            "expires": parse_rfc3339(expires) if expires else None,
        })
    if not tokens and text.strip() and "{" in text:
        raise TokenError("unexpected `kubeadm token list -o json` output: no BootstrapToken object could be read")
    return tokens


def is_upload_certs_proxy(token):
    """The short-lived token `kubeadm init phase upload-certs` creates to own kubeadm-certs."""
    return token["description"] == UPLOAD_CERTS_PROXY_DESCRIPTION and not token["usages"] and not token["groups"]


def remaining_seconds(token, now):
    """Seconds of lifetime left (0 once expired), None for a token that never expires."""
    if token["expires"] is None:
        return None
    return max(0, int((token["expires"] - now).total_seconds()))


def is_expired(token, now):
    return token["expires"] is not None and token["expires"] <= now


def token_info(token, now):
    """What kubeadm_token_info returns for a token: everything but the secret."""
    return {
        "token_id": token["token_id"],
        "description": token["description"],
        "usages": list(token["usages"]),
        "groups": list(token["groups"]),
        "expires": format_rfc3339(token["expires"]) if token["expires"] else None,
        "expired": is_expired(token, now),
        "remaining_seconds": remaining_seconds(token, now),
        "is_upload_certs_proxy": is_upload_certs_proxy(token),
    }


def token_state(token):
    """A diff-able view of a token: ids, expiry, usages, groups, description; never the secret."""
    if token is None:
        return {"state": "absent"}
    expires = token.get("expires")
    if isinstance(expires, datetime.datetime):
        expires = format_rfc3339(expires)
    return {
        "state": "present",
        "token_id": token["token_id"],
        "description": token["description"],
        "usages": sorted(token["usages"]),
        "groups": sorted(token["groups"]),
        "expires": expires,
    }


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
        self.ttl = parse_duration(params.get("ttl"), "ttl")
        self.min_ttl = parse_duration(params.get("min_ttl"), "min_ttl")
        if self.ttl and self.min_ttl > self.ttl:
            raise TokenError(
                f"min_ttl ({params.get('min_ttl')}) is longer than ttl ({params.get('ttl')}): even a fresh token"
                " would be too short to reuse, so every run would create another; set min_ttl below ttl"
            )
        if self.ttl and self.ttl < 1:
            raise TokenError(
                f'ttl {params.get("ttl")!r} is shorter than a second: use at least "1s", or "0" for no expiry'
            )
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
        return self.min_ttl <= left <= self.ttl + _CLOCK_SLACK_SECONDS

    def reusable(self, token, now):
        return not is_upload_certs_proxy(token) and self.matches(token) and self.lifetime_ok(token, now)

    def ttl_flag(self):
        if self.ttl == int(self.ttl):
            return "--ttl=" + format_duration(self.ttl)
        return f"--ttl={int(self.ttl * 1000)}ms"

    def create_args(self, token):
        """argv after `kubeadm`; flags in --flag=value form so no value can pass for a flag."""
        args = ["token", "create", token, self.ttl_flag()]
        if self.description:
            args.append("--description=" + self.description)
        args += ["--usages=" + ",".join(self.usages), "--groups=" + ",".join(self.groups)]
        return args

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


def list_tokens(runner):
    _rc, out, _err = runner.run(["token", "list", "-o", "json"], action="listing bootstrap tokens")
    try:
        return parse_token_list(out)
    except TokenError as exc:
        raise TokenError(exc.msg, cmd=runner.last_cmd, stdout=redact(out, runner.secrets)) from None


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
    try:
        runner.run(request.create_args(token), action=f"creating bootstrap token {token_id}")
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


def list_token_info(runner, params):
    """kubeadm_token_info: every token, without secrets."""
    check_readable_file(params["kubeconfig"], "kubeconfig", KUBECONFIG_HINT)
    now = utcnow()
    return {"changed": False, "tokens": [token_info(t, now) for t in list_tokens(runner)]}
