# Copyright (c) kubelab.kubeadm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Running a tool for a module and failing the module with what went wrong: shared by every module.

PRIVATE to the kubelab.kubeadm collection: not a public API.

Node-side code: Python 3.8 and the standard library only (the AnsibleModule is passed in).

- ModuleError: a failure whose message says what failed, why and the fix; its details (the
  command, exit code, output...) go into fail_json next to the message.
- CommandRunner: runs one tool as an argv list through ``module.run_command`` (never a shell), in
  the C locale so that error lines read the same everywhere, and turns a non-zero exit into a
  ModuleError naming the action, the command, the exit code, the tool's own error line and the
  fix. Secrets are masked in the command line and in the output; the output kept is its tail.
- exit_module: the end of every module's main(): run the logic, report its warnings, exit with
  its result or fail with its ModuleError.
"""

from __future__ import annotations

import re

C_LOCALE = {"LC_ALL": "C", "LANG": "C"}
# What a failure keeps of a tool's stdout and stderr: the end, where the error is.
TAIL_LINES = 50
TAIL_CHARS = 8000

# Anything shaped like a bootstrap token is masked in what we echo back, known or not.
_TOKEN_LIKE_RE = re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b")
REDACTED = "********"


class ModuleError(Exception):
    """A failure for the user: ``msg`` for the message, ``details`` for fail_json (cmd, rc, stderr...)."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


def redact(text, secrets=()):
    """Mask the given secrets and anything token-shaped in text (a string)."""
    if not text:
        return text
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _TOKEN_LIKE_RE.sub(lambda m: m.group(1) + "." + REDACTED, text)


def tail(text, lines=TAIL_LINES, chars=TAIL_CHARS):
    """The end of text: its last lines, at most chars characters, saying how much was cut before."""
    kept = text
    parts = text.splitlines(True)
    if len(parts) > lines:
        kept = "".join(parts[-lines:])
    kept = kept[-chars:]
    cut = len(text) - len(kept)
    return f"[... {cut} characters cut]\n{kept}" if cut else text


def error_line(text):
    """The tool's own 'error: ...' line if there is one, else the last non-empty line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("To see the stack trace")]
    for line in reversed(lines):
        if line.lower().startswith("error"):
            return line
    return lines[-1] if lines else ""


def find_hint(hints, text):
    """The hint of the first (pattern, hint) pair whose pattern is found in text, or None."""
    for pattern, hint in hints:
        if pattern.search(text or ""):
            return hint
    return None


class CommandRunner:
    """Runs one tool for a module.

    binary: the tool's path (or a subclass finds it in find_binary(), on first use).
    error: the ModuleError class a failure is raised as; hints: (compiled pattern, hint) pairs
    matched against the output of a failed command when the caller gives no hint.
    secrets: values to mask in any command line or output put into an error.
    """

    def __init__(self, module, binary=None, error=ModuleError, hints=()):
        self.module = module
        self._binary = binary
        self.error = error
        self.hints = hints
        self.secrets = set()
        self.last_cmd = None

    @property
    def binary(self):
        if self._binary is None:
            self._binary = self.find_binary()
        return self._binary

    def find_binary(self):
        raise self.error("no program was given to run")

    def command(self, args):
        return [self.binary, *args]

    def run(self, args, action, *, hint=None, check=True, error=None, echo_stdout=True, **options):
        """Run the tool with args (options go to command()); return (rc, stdout, stderr).

        With check (the default) a non-zero exit raises ``error`` (default: the runner's error
        class) saying "<action> failed: `<cmd>` exited with <rc>: <error line>. Fix: <hint>".
        echo_stdout=False keeps stdout out of the failure (for output that holds a secret).
        """
        cmd = self.command(args, **options)
        self.last_cmd = redact(" ".join(cmd), self.secrets)
        rc, out, err = self.module.run_command(cmd, environ_update=dict(C_LOCALE))
        if rc != 0 and check:
            raise self.failure(action, rc, out if echo_stdout else None, err, hint=hint, error=error)
        return rc, out, err

    def failure(self, action, rc, out, err, *, hint=None, error=None):
        """The ModuleError for a failed command of action (out=None: stdout is not shown)."""
        stderr = redact((err or "").strip(), self.secrets)
        stdout = redact((out or "").strip(), self.secrets)
        reason = error_line(stderr) or error_line(stdout) or "no error output"
        msg = f"{action} failed: `{self.last_cmd}` exited with {rc}: {reason}"
        hint = hint or find_hint(self.hints, stderr + "\n" + stdout)
        if hint:
            msg += ". Fix: " + hint
        details = {"cmd": self.last_cmd, "rc": rc, "stderr": tail(stderr)}
        if out is not None:
            details["stdout"] = tail(stdout)
        return (error or self.error)(msg, **details)


def exit_module(module, work):
    """Exit the module with work()'s result dict, its "warnings" turned into module warnings.

    A ModuleError from work() fails the module with its message and details instead.
    """
    try:
        result = work()
    except ModuleError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)
