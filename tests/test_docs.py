"""The benchmark commands the docs quote exist and parse with the scripts' own options.

``README.md`` and ``benchmarks/README.md`` cite ``benchmarks/<script>`` commands for
their figures. Each cited script must exist, and each quoted command line must parse
with that script's own ``argparse`` parser (no abbreviations), without running it.

The parsers are read without importing the scripts (they import torch and the whole
library at the top): the test compiles only the script's module-level
``build_parser()`` function, with ``argparse`` and the script's docstring, and calls it.
Options named on their own in the prose (``--sweep-epochs``) must belong to a script
named in the same paragraph or in its section's heading (else in the nearest paragraph
above it in that section that names one).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DOCS = ("README.md", "benchmarks/README.md")
SESSION = "gpu_session.sh"
SESSION_OWN_OPTIONS = {"--prepare"}
"""``gpu_session.sh`` takes ``--prepare`` alone; any other arguments go to ``bench_gpu.py``."""
SESSION_FORWARDS_TO = "bench_gpu.py"

SCRIPT = r"(?:benchmarks/)?(?P<name>bench_\w+\.py|gpu_session\.sh)"
COMMAND_RE = re.compile(rf"(?<![\w/.-]){SCRIPT}(?P<rest>.*)", re.S)
NAME_RE = re.compile(rf"(?<![\w/.-]){SCRIPT}")
BARE_NAME_RE = re.compile(r"(?<![\w/.-])(bench_\w+\.py|_common\.py|gpu_session\.sh)\b")
PATH_RE = re.compile(r"(?<![\w.-])benchmarks/([\w.-]*\w)")
SPAN_RE = re.compile(r"`([^`]+)`")
END_OF_ARGS_RE = re.compile(r"[\"'`#|;&>)]|2>")
"""Where a quoted command's own arguments end: a quote, comment, pipe or redirection."""


# --- the scripts' parsers, without importing the scripts ------------------------------


def _tree(script: str) -> ast.Module:
    return ast.parse((BENCH / script).read_text(), script)


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


@cache
def parser_of(script: str) -> argparse.ArgumentParser:
    """The parser ``benchmarks/<script>`` builds, from its ``build_parser()`` alone."""
    tree = _tree(script)
    func = _function(tree, "build_parser")
    assert func is not None, f"benchmarks/{script} has no module-level build_parser()"
    module = ast.Module(body=[func], type_ignores=[])
    namespace = {"argparse": argparse, "__doc__": ast.get_docstring(tree, clean=False)}
    exec(compile(module, str(BENCH / script), "exec"), namespace)
    parser = namespace["build_parser"]()
    parser.allow_abbrev = False  # a doc must quote the option's full name
    parser.prog = f"benchmarks/{script}"
    return parser


def parse(script: str, args: list[str]) -> None:
    """Parse ``args`` as ``python benchmarks/<script> ARGS`` would; fail with argparse's words."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser_of(script).parse_args(args)
        return
    except SystemExit:
        pass
    pytest.fail(f"{shlex.join(args)}: {err.getvalue().strip()}", pytrace=False)


def options_of(script: str) -> set[str]:
    if script == SESSION:
        return SESSION_OWN_OPTIONS | options_of(SESSION_FORWARDS_TO)
    return {opt for action in parser_of(script)._actions for opt in action.option_strings}


def check_command(script: str, args: list[str]) -> None:
    if script == SESSION:
        if args == ["--prepare"]:
            return
        assert "--prepare" not in args, f"{SESSION}: --prepare takes no other arguments"
        script = SESSION_FORWARDS_TO
    parse(script, args)


# --- what the docs quote ----------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    script: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.script} {' '.join(self.args)}".strip()


@dataclass
class Paragraph:
    line: int
    text: str
    code: bool  # a fenced or indented code block: each line is a command line
    heading: str  # the heading of its section


def paragraphs(doc: str) -> list[Paragraph]:
    """Blank-line separated blocks; fenced blocks whole; headings start sections."""
    out: list[Paragraph] = []
    heading, block, start, fence = "", [], 0, False

    def flush(code: bool = False) -> None:
        nonlocal block
        if block:
            indented = all(line.startswith("    ") for line in block)
            out.append(Paragraph(start, "\n".join(block), code or indented, heading))
        block = []

    for number, line in enumerate((ROOT / doc).read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            if fence:
                flush(code=True)
            else:
                flush()
                start = number + 1
            fence = not fence
        elif fence:
            block.append(line)
        elif not line.strip():
            flush()
        elif line.startswith("#"):
            flush()
            heading = line
        else:
            if not block:
                start = number
            block.append(line)
    flush()
    return out


def _args(rest: str) -> tuple[str, ...]:
    """The arguments after a script's name, up to a quote, comment, pipe or redirection."""
    rest = END_OF_ARGS_RE.split(rest, maxsplit=1)[0]
    return tuple(rest.replace("[", " ").replace("]", " ").split())  # `[--compile]`: optional


def commands(doc: str) -> list[Command]:
    """Every quoted ``benchmarks/<script> ...`` command line of ``doc``."""
    found = []
    for para in paragraphs(doc):
        if para.code:
            text = para.text.replace("\\\n", " ")  # shell line continuations
            pieces = [(para.line + i, line) for i, line in enumerate(text.split("\n"))]
        else:
            pieces = [
                (para.line + para.text.count("\n", 0, m.start()), " ".join(m.group(1).split()))
                for m in SPAN_RE.finditer(para.text)
            ]
        for line, piece in pieces:
            m = COMMAND_RE.search(piece)
            if m:
                found.append(Command(doc, line, m["name"], _args(m["rest"])))
    return found


def option_mentions(doc: str) -> list[tuple[str, int, str, frozenset[str]]]:
    """``(doc, line, option, scripts it may belong to)`` for each prose span ``--option ...``."""
    found = []
    section, nearest = None, frozenset()
    for para in paragraphs(doc):
        if para.heading != section:
            section, nearest = para.heading, frozenset()
        if para.code:
            continue
        named = frozenset(NAME_RE.findall(para.text))
        here = named | frozenset(NAME_RE.findall(para.heading))
        candidates = here or nearest
        if named:
            nearest = named
        for m in SPAN_RE.finditer(para.text):
            span = " ".join(m.group(1).split())
            if span.startswith("--") and candidates:
                line = para.line + para.text.count("\n", 0, m.start())
                found.append((doc, line, span.split()[0], candidates))
    return found


ALL_COMMANDS = [c for doc in DOCS for c in commands(doc)]
ALL_MENTIONS = [m for doc in DOCS for m in option_mentions(doc)]


# --- the tests ----------------------------------------------------------------------------


def test_the_docs_quote_a_command_for_every_benchmark():
    quoted = {c.script for c in ALL_COMMANDS}
    scripts = {p.name for p in BENCH.glob("bench_*.py")} | {SESSION}
    assert quoted >= scripts, f"no quoted command for {sorted(scripts - quoted)}"
    assert any(c.args for c in ALL_COMMANDS), "no command with options found: parser broken?"


@pytest.mark.parametrize("doc", DOCS)
def test_every_benchmark_file_the_docs_name_exists(doc):
    text = (ROOT / doc).read_text()
    named = set(PATH_RE.findall(text)) | set(BARE_NAME_RE.findall(text))
    missing = sorted(name for name in named if not (BENCH / name).exists())
    assert not missing, f"{doc} names benchmarks/{missing} that do not exist"


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=str)
def test_every_quoted_command_parses(command):
    assert (BENCH / command.script).is_file(), f"{command}: no such script"
    check_command(command.script, list(command.args))


@pytest.mark.parametrize(
    ("doc", "line", "option", "scripts"),
    ALL_MENTIONS,
    ids=[f"{d}:{n}:{o}" for d, n, o, _ in ALL_MENTIONS],
)
def test_every_option_named_in_the_prose_exists(doc, line, option, scripts):
    assert any(option in options_of(s) for s in scripts if (BENCH / s).is_file()), (
        f"{doc}:{line}: {option} is not an option of {', '.join(sorted(scripts))}"
    )


def test_gpu_session_runs_existing_scripts_with_their_options():
    text = (BENCH / SESSION).read_text()
    missing = sorted({n for n in BARE_NAME_RE.findall(text) if not (BENCH / n).exists()})
    assert not missing, f"{SESSION} names benchmarks/{missing} that do not exist"
    calls = 0
    for line in text.replace("\\\n", " ").splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = re.search(r"benchmarks/(bench_\w+\.py)(.*)", line)
        if m:
            calls += 1
            rest = re.split(r"\s(?:2>&1|\||>|;|&&)", m.group(2), maxsplit=1)[0]
            args = [a for a in shlex.split(rest) if a != "$@"]  # "$@": the caller's, checked above
            parse(m.group(1), args)
    assert calls >= 2, f"{SESSION} no longer runs bench_gpu.py and bench_head.py?"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("bench_*.py")))
def test_every_benchmark_parses_its_options_with_build_parser(script):
    main = _function(_tree(script), "main")
    assert main is not None, f"benchmarks/{script} has no main()"
    calls = {ast.unparse(n.func) for n in ast.walk(main) if isinstance(n, ast.Call)}
    assert "build_parser" in calls, f"benchmarks/{script}: main() does not use build_parser()"
    parser_of(script)
