"""The learner's guides (docs/guide.md, docs/guide.zh-CN.md) and both READMEs cannot rot: every
`aigc-keras ...` command parses with the real CLI, every code reference of the guides names a file and
symbol that exist, every quoted excerpt is still in the file it quotes, every picture and link is
there, and no number was left to fill in."""

import re
import shlex
from pathlib import Path

import click
import pytest

from aigc_keras.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "docs" / "guide.md", ROOT / "docs" / "guide.zh-CN.md", ROOT / "README.zh-CN.md"]
EVERY_DOC = [*DOCS, ROOT / "README.md", *(ROOT / "docs" / name for name in (  # the reference pages too
    "commands.md", "data.md", "training.md", "on-device.md", "benchmarks.md", "reliability.md"))]
PLACEHOLDER = re.compile(r"\{\{|@@")
CODE_REF = re.compile(r"`(aigc_keras/[\w/]+\.py)`(?:[^`\n]{0,12}`([A-Za-z_][\w.]*)`)?")


def commands(text: str) -> list[str]:
    """Every `aigc-keras ...` command line in code blocks and inline code (comments cut off)."""
    found = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("aigc-keras "):
                found.append(line)
    found += [m for m in re.findall(r"`(aigc-keras [^`]+)`", text)]
    return [line for line in found if not any(_placeholder(arg) for arg in shlex.split(line))]


def _placeholder(arg: str) -> bool:
    """`...` or a word in capitals, as in `aigc-keras export FAMILY --tflite`: not a real argument."""
    return arg == "..." or (arg.isalpha() and arg.isupper())


def check_command(line: str) -> None:
    args = shlex.split(line)[1:]
    command, ctx = cli, None
    while isinstance(command, click.Group):
        ctx = click.Context(command, info_name=command.name, parent=ctx)
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"{line}: no command {name!r}"
        command = sub
    if args or not any(p.required for p in command.params):  # a bare command name only names it
        command.make_context(command.name, args, parent=ctx)  # parses every option, raises on a bad one


@pytest.mark.parametrize("doc", EVERY_DOC, ids=lambda p: p.name)
def test_every_command_parses_with_the_real_cli(doc):
    found = commands(doc.read_text())
    assert len(found) >= (5 if doc.name.startswith(("README", "guide", "commands")) else 1), doc
    for line in found:
        check_command(line)


def test_the_command_check_catches_a_wrong_flag():
    with pytest.raises(click.UsageError):
        check_command("aigc-keras train gan --no-such-flag 3")
    with pytest.raises(AssertionError):
        check_command("aigc-keras train rnn")


def _symbol_exists(path: Path, symbol: str) -> bool:
    source = path.read_text()
    *owners, name = symbol.split(".")
    if owners and not re.search(rf"^class {re.escape(owners[-1])}\b", source, flags=re.M):
        return False
    return bool(re.search(rf"^\s*(def|class) {re.escape(name)}\b|^{re.escape(name)}\s*=", source, flags=re.M))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_code_reference_and_excerpt_exists(doc):
    text = doc.read_text()
    refs = CODE_REF.findall(text)
    for path, symbol in refs:
        assert (ROOT / path).is_file(), path
        if symbol:
            assert _symbol_exists(ROOT / path, symbol), f"{path} has no {symbol}"
    # Each ```python block quotes the file named last before it: every line must still be there.
    last_file = None
    for part in re.split(r"(```python\n.*?```)", text, flags=re.S):
        if part.startswith("```python"):
            assert last_file, "an excerpt that names no file"
            source = {line.strip() for line in (ROOT / last_file).read_text().splitlines()}
            for line in part.splitlines()[1:-1]:
                assert line.strip() in source, f"{last_file} no longer has: {line.strip()}"
        else:
            named = re.findall(r"`(aigc_keras/[\w/]+\.py)`", part)
            last_file = named[-1] if named else last_file


@pytest.mark.parametrize("doc", EVERY_DOC, ids=lambda p: p.name)
def test_every_picture_and_link_exists_and_every_number_is_filled_in(doc):
    text = doc.read_text()
    assert not PLACEHOLDER.search(text), f"a number was never filled in: {PLACEHOLDER.search(text).group()}"
    for target in re.findall(r"!?\[[^\]]*\]\(([^)#\s]+)\)", text):
        if not target.startswith("http"):
            assert (doc.parent / target).exists(), target


def test_both_readmes_link_to_each_other():
    assert "README.zh-CN.md" in (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "](README.md)" in (ROOT / "README.zh-CN.md").read_text()
