"""Generate the cluster_* variable docs from their one source, playbooks/vars/cluster_spec.yml.

    python tests/gen_cluster_vars.py           # rewrite the generated files (`make vars`)
    python tests/gen_cluster_vars.py --check   # exit 1 and show a diff when they differ (tests/unit runs this)

It writes:

- docs/cluster-variables.md, whole: the table of every cluster_* variable (name, type, default, choices,
  description).
- The generated part of each inventory's group_vars/all.yml (INVENTORIES), everything below MARKER: each
  variable's description as comments and its default as a commented line, to uncomment and change. What
  is above MARKER is hand-written and kept as it is (connection settings, values with the reason for
  them); a variable set there is marked "set above" below. A variable set in the generated part
  (uncommented, on one line) keeps its line when the part is generated again.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "playbooks" / "vars" / "cluster_spec.yml"
DOC = REPO / "docs" / "cluster-variables.md"
INVENTORIES = [REPO / "inventories" / name / "group_vars" / "all.yml" for name in ("lab", "local")]
MARKER = "# ---- Generated from playbooks/vars/cluster_spec.yml by tests/gen_cluster_vars.py (make vars) ----"
WIDTH = 110
_ACTIVE = re.compile(r"^(cluster_[a-z0-9_]+):(.*)$")
_MARKUP = re.compile(r"\b[COMV]\(([^)]*)\)")


def load_options(spec: Path = SPEC) -> dict[str, dict[str, Any]]:
    """The spec's options, in the file's order."""
    return yaml.safe_load(spec.read_text())["argument_specs"]["cluster"]["options"]


def defaults(options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Every cluster_* variable's default (tests/verify reads them from here too)."""
    return {name: option.get("default") for name, option in (options or load_options()).items()}


def description(option: dict[str, Any], code: str = "`{}`") -> str:
    text = option["description"]
    text = " ".join(text) if isinstance(text, list) else text
    return _MARKUP.sub(lambda m: code.format(m.group(1)), text)


def yaml_value(value: Any) -> str:
    """One line of YAML for a default: strings that could read as something else are double-quoted."""
    if isinstance(value, str):
        plain = value and not re.fullmatch(r"[0-9.]+", value) and yaml.safe_load(value) == value
        return value if plain and ": " not in value and " #" not in value else json.dumps(value)
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def render_doc(options: dict[str, dict[str, Any]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "<!-- Generated from playbooks/vars/cluster_spec.yml by tests/gen_cluster_vars.py: edit the spec,",
        "     then run `make vars`. `make units` fails while this page and the spec differ. -->",
        "# The `cluster_*` variables",
        "",
        "The inputs of `site.yml`, `playbooks/add_worker.yml`, `reset.yml` and `bundle.yml`. Set them in the",
        "inventory (`group_vars/all.yml`, a host's `cluster_node_address` in `host_vars` or `hosts.yml`) or with",
        "`-e`. Their one source is [`playbooks/vars/cluster_spec.yml`](../playbooks/vars/cluster_spec.yml), an",
        "argument spec: the pre-flight play validates every value against it before any node is touched",
        "(types, choices, unknown `cluster_*` names), gives every unset variable the default below, and then",
        "checks what a spec cannot say (ranges, ports that must differ, the bundle directory in bundle mode,",
        "the version). How a value reaches a role:",
        "[architecture](architecture.md#how-a-cluster_-variable-reaches-a-role).",
        "",
        "| variable | type | default | choices | description |",
        "|---|---|---|---|---|",
    ]
    for name, option in options.items():
        kind = option["type"] + (f" of {option['elements']}" if option.get("elements") else "")
        default = f"`{yaml_value(option['default'])}`" if "default" in option else ""
        choices = ", ".join(f"`{c}`" for c in option.get("choices", []))
        lines.append(f"| `{name}` | {kind} | {cell(default)} | {choices} | {cell(description(option))} |")
    return "\n".join(lines) + "\n"


def split(text: str) -> tuple[str, str]:
    """(hand-written head, generated tail) of an inventory file; the head ends with MARKER's line."""
    head, sep, tail = text.partition(MARKER + "\n")
    if not sep:
        raise ValueError(f"no line {MARKER!r}: add it where the generated part is to start")
    return head, tail


def active_lines(tail: str) -> dict[str, str]:
    """cluster_* variables set (uncommented, one line each) in a generated part, with their lines."""
    return {m.group(1): line for line in tail.splitlines() if (m := _ACTIVE.match(line))}


def render_tail(options: dict[str, dict[str, Any]], head: str, active: dict[str, str]) -> str:
    set_above = {k for k in (yaml.safe_load(head) or {}) if k.startswith("cluster_")}
    lines = [
        "# Every cluster_* variable: uncomment one to change it (or set it above this line). The comments are",
        "# regenerated; docs/cluster-variables.md has the same in a table.",
    ]
    for name, option in options.items():
        lines.append("")
        text = description(option, "{}")
        if option.get("choices"):
            text += " One of: " + ", ".join(option["choices"]) + "."
        lines += textwrap.wrap(text, WIDTH, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
        default = yaml_value(option.get("default"))
        if name in set_above:
            lines.append(f"# {name}: {default}  # set above")
        elif name in active:
            lines += [f"# (default: {default})", active[name]]
        else:
            lines.append(f"# {name}: {default}")
    return "\n".join(lines) + "\n"


def render_inventory(options: dict[str, dict[str, Any]], text: str) -> str:
    head, tail = split(text)
    return head + MARKER + "\n" + render_tail(options, head, active_lines(tail))


def expected() -> dict[Path, str]:
    """Every generated file with the content it must have."""
    options = load_options()
    files = {DOC: render_doc(options)}
    for path in INVENTORIES:
        files[path] = render_inventory(options, path.read_text())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    drift = []
    for path, want in expected().items():
        have = path.read_text() if path.exists() else ""
        if have == want:
            continue
        drift.append(path)
        if args.check:
            rel = str(path.relative_to(REPO))
            sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), rel, rel))
        else:
            path.write_text(want)
            print(f"wrote {path.relative_to(REPO)}")
    if args.check and drift:
        names = ", ".join(str(p.relative_to(REPO)) for p in drift)
        print(f"\n{names} differ from playbooks/vars/cluster_spec.yml: run `make vars` (tests/gen_cluster_vars.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
