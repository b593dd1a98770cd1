# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bootstrap tokens: format, generation, Go durations, ``kubeadm token list -o json`` parsing,
and the logic of the kubeadm_token_info module (kubeadm_token's is in _token_ensure.py).

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


def parse_ttls(ttl, min_ttl, ttl_option="ttl", min_ttl_option="min_ttl"):
    """(ttl, min_ttl) in seconds, or TokenError: both parse (parse_duration), min_ttl is not longer
    than a ttl that expires, and an expiring ttl is at least a second. The one set of rules of
    kubeadm_token and of the pre-flight (the kubelab.kubeadm.token_ttl_problems filter)."""
    ttl_seconds = parse_duration(ttl, ttl_option)
    min_ttl_seconds = parse_duration(min_ttl, min_ttl_option)
    if ttl_seconds and min_ttl_seconds > ttl_seconds:
        raise TokenError(
            f"{min_ttl_option} ({min_ttl}) is longer than {ttl_option} ({ttl}): even a fresh token"
            f" would be too short to reuse, so every run would create another; set {min_ttl_option} below {ttl_option}"
        )
    if ttl_seconds and ttl_seconds < 1:
        raise TokenError(
            f'{ttl_option} {ttl!r} is shorter than a second: use at least "1s", or "0" for no expiry'
        )
    return ttl_seconds, min_ttl_seconds


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
# Listing tokens (kubeadm_token_info; kubeadm_token reads the list with it)
# ---------------------------------------------------------------------------------------------


def list_tokens(runner):
    _rc, out, _err = runner.run(["token", "list", "-o", "json"], action="listing bootstrap tokens")
    try:
        return parse_token_list(out)
    except TokenError as exc:
        raise TokenError(exc.msg, cmd=runner.last_cmd, stdout=redact(out, runner.secrets)) from None


def list_token_info(runner, params):
    """kubeadm_token_info: every token, without secrets."""
    check_readable_file(params["kubeconfig"], "kubeconfig", KUBECONFIG_HINT)
    now = utcnow()
    return {"changed": False, "tokens": [token_info(t, now) for t in list_tokens(runner)]}
