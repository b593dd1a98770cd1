"""Tests for plugins/module_utils/_command.py: the runner and failure helper every module shares."""

from __future__ import annotations

import re
from unittest.mock import MagicMock

import pytest
from ansible_collections.kubelab.kubeadm.plugins.module_utils import _command as C

TOKEN = "abcdef.0123456789abcdef"


def fake_module(result=(0, "ok\n", "")):
    module = MagicMock()
    module.run_command.return_value = result
    return module


class ToolError(C.ModuleError):
    """A tool-specific failure class, as the modules define them."""


class OtherError(ToolError):
    """A narrower failure for one command (DockerUnavailable is one)."""


# --- ModuleError, redact, tail, error_line ------------------------------------------------------


def test_module_error_carries_message_and_details():
    err = C.ModuleError("it broke: fix it", cmd="x", rc=2)
    assert str(err) == err.msg == "it broke: fix it"
    assert err.details == {"cmd": "x", "rc": 2}
    assert C.ModuleError("plain").details == {}


def test_redact_masks_known_secrets_and_anything_token_shaped():
    text = f"kubeadm token create {TOKEN} --ttl=24h; other zzzzzz.yyyyyyyyyyyyyyyy; key f00d and cafe"
    out = C.redact(text, {"f00d", ""})
    assert TOKEN not in out
    assert "yyyyyyyyyyyyyyyy" not in out
    assert "abcdef.********" in out
    assert "zzzzzz.********" in out
    assert "key ******** and cafe" in out
    assert C.redact("", {"x"}) == ""
    assert C.redact(None) is None


def test_tail_keeps_short_output_as_it_is():
    assert C.tail("") == ""
    assert C.tail("one\r\ntwo\n") == "one\r\ntwo\n"


def test_tail_keeps_the_last_lines_and_says_what_was_cut():
    text = "".join(f"line {n}\n" for n in range(100))
    out = C.tail(text, lines=3)
    assert out == f"[... {len(text) - 24} characters cut]\nline 97\nline 98\nline 99\n"
    out = C.tail("x" * 50, chars=10)
    assert out == "[... 40 characters cut]\n" + "x" * 10


def test_tail_bounds_the_default_failure_output():
    text = "y" * (C.TAIL_CHARS * 3)
    assert len(C.tail(text)) < C.TAIL_CHARS + 40


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", ""),
        (None, ""),
        ("something odd\n\n", "something odd"),
        (
            "I1201 klog\nerror: the real one\nTo see the stack trace of this error execute with --v=5\n",
            "error: the real one",
        ),
        ("Error response from daemon: no such image\nlast\n", "Error response from daemon: no such image"),
    ],
)
def test_error_line(text, line):
    assert C.error_line(text) == line


def test_find_hint_first_match_wins():
    hints = ((re.compile("refused"), "start it"), (re.compile("refused|denied"), "other"))
    assert C.find_hint(hints, "connection refused") == "start it"
    assert C.find_hint(hints, "permission denied") == "other"
    assert C.find_hint(hints, "fine") is None
    assert C.find_hint(hints, None) is None


# --- CommandRunner ------------------------------------------------------------------------------


def test_run_builds_argv_and_runs_without_a_shell_in_the_c_locale():
    module = fake_module(result=(0, "out", "err"))
    runner = C.CommandRunner(module, "/usr/bin/tool")
    assert runner.run(["a", "b c"], action="doing") == (0, "out", "err")
    module.run_command.assert_called_once_with(
        ["/usr/bin/tool", "a", "b c"], environ_update={"LC_ALL": "C", "LANG": "C"}
    )
    assert runner.last_cmd == "/usr/bin/tool a b c"


def test_failure_names_action_command_rc_reason_and_fix_without_secrets():
    stderr = f"warning: noise\nerror: the thing {TOKEN} broke\nmore\n"
    module = fake_module(result=(3, f"printed {TOKEN}\n", stderr))
    runner = C.CommandRunner(module, "/usr/bin/tool", error=ToolError)
    runner.secrets.add(TOKEN)
    with pytest.raises(ToolError) as info:
        runner.run(["create", TOKEN], action="creating the thing", hint="run it again")
    err = info.value
    assert err.msg == (
        "creating the thing failed: `/usr/bin/tool create ********` exited with 3: error: the thing ******** broke."
        " Fix: run it again"
    )
    assert err.details == {
        "cmd": "/usr/bin/tool create ********",
        "rc": 3,
        "stderr": "warning: noise\nerror: the thing ******** broke\nmore",
        "stdout": "printed ********",
    }


def test_failure_without_output_takes_the_hint_from_the_runners_hints():
    hints = ((re.compile("daemon"), "start the daemon"),)
    runner = C.CommandRunner(fake_module(result=(1, "", "")), "/t", hints=hints)
    with pytest.raises(C.ModuleError, match=r"^x failed: `/t go` exited with 1: no error output$"):
        runner.run(["go"], action="x")
    runner = C.CommandRunner(fake_module(result=(1, "is the daemon up?\n", "")), "/t", hints=hints)
    with pytest.raises(C.ModuleError, match=r"exited with 1: is the daemon up\?\. Fix: start the daemon$"):
        runner.run(["go"], action="x")


def test_failure_output_is_bounded():
    runner = C.CommandRunner(fake_module(result=(1, "", "z" * 100000 + "\nerror: last\n")), "/t")
    with pytest.raises(C.ModuleError) as info:
        runner.run(["go"], action="x")
    assert info.value.details["stderr"].endswith("z\nerror: last")
    assert len(info.value.details["stderr"]) < C.TAIL_CHARS + 40


def test_check_false_returns_the_failure_and_error_overrides_the_class():
    runner = C.CommandRunner(fake_module(result=(1, "", "nope")), "/t", error=ToolError)
    assert runner.run(["inspect"], action="x", check=False) == (1, "", "nope")
    with pytest.raises(OtherError, match=r"^x failed"):
        runner.run(["inspect"], action="x", error=OtherError)


def test_echo_stdout_false_keeps_stdout_out_of_the_failure():
    runner = C.CommandRunner(fake_module(result=(1, "secret key material", "")), "/t")
    with pytest.raises(C.ModuleError) as info:
        runner.run(["view"], action="x", echo_stdout=False)
    assert "stdout" not in info.value.details
    assert "secret key material" not in info.value.msg
    assert info.value.msg.endswith("no error output")


def test_a_runner_without_a_binary_says_so():
    runner = C.CommandRunner(fake_module(), error=ToolError)
    with pytest.raises(ToolError, match="no program was given to run"):
        runner.run(["x"], action="x")


# --- exit_module --------------------------------------------------------------------------------


class Exited(Exception):
    pass


def exits(how):
    """A stand-in for exit_json/fail_json: they never return."""

    def leave(**result):
        raise Exited(how, result)

    return leave


def module_for_exit():
    module = MagicMock()
    module.exit_json.side_effect = exits("exit")
    module.fail_json.side_effect = exits("fail")
    return module


def test_exit_module_reports_warnings_and_exits_with_the_result():
    module = module_for_exit()
    with pytest.raises(Exited) as info:
        C.exit_module(module, lambda: {"changed": True, "x": 1, "warnings": ["careful", "twice"]})
    assert info.value.args == ("exit", {"changed": True, "x": 1})
    assert [c.args for c in module.warn.call_args_list] == [("careful",), ("twice",)]


def test_exit_module_fails_with_the_message_and_details():
    module = module_for_exit()

    def work():
        raise ToolError("it broke", cmd="/t x", rc=1)

    with pytest.raises(Exited) as info:
        C.exit_module(module, work)
    assert info.value.args == ("fail", {"msg": "it broke", "cmd": "/t x", "rc": 1})
    module.warn.assert_not_called()


def test_exit_module_lets_other_exceptions_through():
    def work():
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        C.exit_module(module_for_exit(), work)
