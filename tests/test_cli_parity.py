"""One command line: the same flag means the same thing in every command and sub-action.

Walks every parser ``python -m reproduce`` builds (commands and their sub-actions) and holds
them to ``reproduce.commands.common``: ``--device`` defaults to ``auto``, ``-q/--quiet`` is the
only progress switch, ``--version`` everywhere, plain-text help (no reStructuredText markup), a
description for every sub-action and copyable examples for every command.
"""
from __future__ import annotations

import argparse
import re

import pytest

from reproduce import __version__
from reproduce.cli import COMMANDS, command_parser, main
from reproduce.commands.common import walk

# the commands whose work is long enough for progress output
PROGRESS = {"convert", "stage", "verify", "export", "infer", "weights", "train",
            "data fetch", "data hha", "demo prepare"}


def every_parser():
    for name in COMMANDS:
        for parser in walk(command_parser(name)):
            yield parser.prog.removeprefix("python -m reproduce "), parser


PARSERS = dict(every_parser())


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return parser._option_string_actions


def test_every_command_and_sub_action_is_walked():
    assert {"data fetch", "data hha", "data check", "demo prepare", "demo report"} <= set(PARSERS)
    assert set(COMMANDS) <= set(PARSERS)


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_same_flag_same_meaning(prog):
    opts = options(PARSERS[prog])
    assert "--no-progress" not in opts and "--progress" not in opts, prog
    if "--device" in opts:
        assert opts["--device"].default == "auto", prog
        assert "auto" in opts["--device"].help and "CUDA" in opts["--device"].help, prog
    if "--quiet" in opts:
        assert opts["--quiet"] is opts.get("-q"), f"{prog}: --quiet without -q"
        assert isinstance(opts["--quiet"], argparse._StoreTrueAction), prog
    assert "--version" in opts, prog


def test_progress_is_switched_off_by_quiet_where_work_is_long():
    assert all("--quiet" in options(PARSERS[prog]) for prog in PROGRESS), \
        [prog for prog in PROGRESS if "--quiet" not in options(PARSERS[prog])]


def test_commands_that_run_nets_take_device():
    for prog in ("forward", "train", "stage", "verify", "export", "infer"):
        assert "--device" in options(PARSERS[prog]), prog


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_help_is_plain_text_with_a_description(prog):
    text = PARSERS[prog].format_help()
    assert "``" not in text, prog
    assert PARSERS[prog].description and PARSERS[prog].description.strip(), f"{prog} has no description"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_copyable_examples(name):
    text = command_parser(name).format_help()
    examples = text.split("examples:\n", 1)[1].splitlines() if "examples:\n" in text else []
    lines = [line.strip() for line in examples if line.strip()]
    assert 2 <= len(lines) <= 3, (name, lines)
    assert all(re.search(rf"python -m reproduce {name}\b", line) for line in lines), lines


def test_version_everywhere(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"python -m reproduce {__version__}"
    for argv in (["stage", "--version"], ["data", "fetch", "--version"], ["inspect", "--version"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
        assert capsys.readouterr().out.strip().endswith(__version__), argv


def test_old_progress_spellings_are_gone(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["data", "check", "--no-progress"])
    assert stop.value.code == 2 and "--no-progress" in capsys.readouterr().err
