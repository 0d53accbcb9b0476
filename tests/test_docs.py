"""The commands the README and docs/ show run as written: each `zoo` command exists, each of its options does, and
each recipe or architecture it names is one the zoo has."""

import re

import conftest
import pytest

PAGES = [conftest.ROOT / "README.md", *sorted((conftest.ROOT / "docs").rglob("*.md")),
         *sorted((conftest.ROOT / "examples").glob("*/README.md"))]
NAMED = ("train", "pretrain", "info")  # the commands whose first argument is a recipe or architecture


def zoo_commands(text: str) -> list[str]:
    """Every `zoo ...` command of a page: the lines of its shell code blocks and its inline code spans."""
    lines, prose, fence = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else (line[3:].strip() or "text")
        elif fence in ("bash", "sh", "console", "text"):
            lines.append(line)
        elif fence is None:
            prose.append(line)
    spans = [span.replace("$(command -v zoo)", "zoo") for span in re.findall(r"`([^`\n]+)`", "\n".join(prose))]
    lines += [span for span in spans if re.match(r"(torchrun .*)?zoo [a-z]", span)]
    commands = []
    for line in lines:
        line = line.split("  #")[0].replace("$(command -v zoo)", "zoo").replace("\\|", "|")
        for match in re.finditer(r"(?:^|[\s(;&])zoo ([a-z]+.*?)(?=$|\)|;|&&)", line):
            commands.append(match.group(1).strip())
    return commands


def plugin_names() -> set[str]:
    """Names the pages' plugin examples register (entry point lines in their TOML, and the example packages')."""
    texts = [page.read_text() for page in PAGES] + [p.read_text() for p in (conftest.ROOT / "examples").glob("*/pyproject.toml")]
    return {m.group(1) for text in texts for m in re.finditer(r'^\s*([a-z][\w-]*) = "[\w.]+:\w+"', text, re.M)}


def test_the_pages_show_commands():
    assert len([c for page in PAGES for c in zoo_commands(page.read_text())]) > 40


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(conftest.ROOT)))
def test_every_command_option_and_name_exists(page):
    from zoo.cli import main
    from zoo.config.recipes import load_recipes
    from zoo.registry.discovery import architectures

    names = set(load_recipes()) | set(architectures().names()) | plugin_names()
    for command in zoo_commands(page.read_text()):
        words = command.split()
        subs = [main.commands.get(name) for name in words[0].split("|")]  # `zoo train|pretrain ...`
        assert all(subs), f"{page.name}: `zoo {command}`: no command {words[0]!r}"
        for sub in subs:
            known = {opt for param in sub.params for opt in param.opts + param.secondary_opts} | {"--help"}
            for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", command):
                assert option in known, f"{page.name}: `zoo {command}`: {sub.name} has no option {option}"
        first = words[1].strip("[]") if len(words) > 1 else ""
        if words[0] in NAMED and re.fullmatch(r"[a-z][a-z0-9-]*", first):
            assert first in names, f"{page.name}: `zoo {command}`: no recipe or architecture {first!r}"
