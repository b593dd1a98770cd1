"""Shared by every test tier: with --fail-on-skip a skipped test fails the run.

A test that CI skips is a test CI does not run, and a "passed" summary hides it. The make targets
CI calls (units, molecule, e2e) pass --fail-on-skip together with -rs, so each skip is printed
with its reason and turns the session's exit status into a failure; a plain `pytest` run by hand
keeps pytest's usual behaviour. The reasons say what to start or build so the test can run.
"""

from __future__ import annotations

import pytest

_SKIPPED: list[tuple[str, str]] = []


def pytest_addoption(parser):
    parser.addoption(
        "--fail-on-skip",
        action="store_true",
        default=False,
        help="fail the session when any test is skipped (CI: a skip is a test that did not run)",
    )


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _SKIPPED.append((report.nodeid, reason.removeprefix("Skipped: ")))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if session.config.getoption("fail_on_skip") and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not config.getoption("fail_on_skip") or not _SKIPPED:
        return
    terminalreporter.section("skipped tests fail this run (--fail-on-skip)", red=True)
    for nodeid, reason in _SKIPPED:
        terminalreporter.line(f"{nodeid}: {reason}", red=True)
    terminalreporter.line(
        f"{len(_SKIPPED)} test(s) did not run. Start or build what each reason names (make bundle builds the"
        " lab's kubeadm and kubectl and starts Docker Engine), then run again.",
        red=True,
    )
