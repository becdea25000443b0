"""Every ``python -m fer_utils...`` command that the README and the model card show exists and explains itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "models/README.md")
SUBCOMMANDS = {"describe", "export", "average", "synthetic", "crossfit"}


def documented_commands() -> list[str]:
    """``python -m fer_utils.X [SUBCOMMAND]`` as written in the docs, each once."""
    found = set()
    for doc in DOCS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        for module, word in re.findall(r"python -m (fer_utils(?:\.\w+)*)(?: (\w+))?", text):
            found.add(f"{module} {word}" if word in SUBCOMMANDS else module)
    return sorted(found)


def test_the_docs_show_the_main_commands():
    commands = documented_commands()
    for expected in ("fer_utils.train", "fer_utils.evaluate", "fer_utils.data", "fer_utils.model export"):
        assert expected in commands


@pytest.mark.parametrize("command", documented_commands())
def test_each_documented_command_answers_help(command):
    out = subprocess.run(
        [sys.executable, "-m", *command.split(), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_train_help_describes_every_flag_in_words():
    out = subprocess.run(
        [sys.executable, "-m", "fer_utils.train", "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    help_text = " ".join(out.stdout.split())
    assert "--lr LR peak learning rate after warm-up (default: 0.002)" in help_text
    assert "--keep_last_epochs KEEP_LAST_EPOCHS keep the weights of the last N epochs" in help_text
