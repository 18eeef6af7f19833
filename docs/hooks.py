"""MkDocs hooks of the documentation site (named in mkdocs.yml).

Two jobs:

* The command-line reference is generated, not written: a page holding the
  marker `<!-- cli-reference -->` gets, in its place, the `--help` text of
  `simclr-keras` and of each of its commands, rendered from the parser
  itself (`simclr_keras_cli.arguments.build_parser`; it imports no Keras).
* Pages may link to files of the repository outside `docs/` (figures in
  `img/`, raw results and scripts in `benchmarks/`, `examples/`) by their
  relative path, so the links work where the Markdown is read (GitHub, an
  editor). Those files are copied into the site at the same path under its
  root, and such links are rewritten to point there; a link to anything
  else outside `docs/` is left alone, and MkDocs reports it as broken.
"""

import argparse
import contextlib
import os
import posixpath
import re

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Folders of the repository whose files pages may link to.
REPO_FOLDERS = ("img", "benchmarks", "examples")
# Extensions copied from them (Markdown files would become pages).
REPO_EXTENSIONS = (".png", ".json", ".log", ".txt", ".py", ".sh", ".csv")
CLI_MARKER = "<!-- cli-reference -->"
HELP_WIDTH = "100"
LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?\))")

_repo_files = set()


def repo_files():
    """Paths (relative to the repository root) of the files a page may link to."""
    found = []
    for folder in REPO_FOLDERS:
        for directory, dirs, names in os.walk(os.path.join(ROOT, folder)):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            for name in sorted(names):
                if name.endswith(REPO_EXTENSIONS):
                    path = os.path.join(directory, name)
                    found.append(os.path.relpath(path, ROOT).replace(os.sep, "/"))
    return found


def on_files(files, config):
    """Add the repository's linkable files to the site, at their own paths."""
    _repo_files.clear()
    for path in repo_files():
        if files.get_file_from_path(path) is None:
            files.append(File(path, ROOT, config["site_dir"], config["use_directory_urls"]))
            _repo_files.add(path)
    return files


def rewrite_repo_links(markdown, page_src_uri):
    """Point links that leave `docs/` for a copied repository file at its copy."""
    page_dir = posixpath.dirname(page_src_uri)

    def replace(match):
        target = match.group(2)
        if "://" in target or target.startswith("/"):
            return match.group(0)
        # The target as seen from the repository root (pages live in docs/).
        in_repo = posixpath.normpath(posixpath.join("docs", page_dir, target))
        if in_repo.startswith("docs/") or in_repo not in _repo_files:
            return match.group(0)
        # The copy lies at `in_repo` under the site's root, which is docs/.
        new = posixpath.relpath(in_repo, page_dir or ".")
        return match.group(1) + new + match.group(3)

    return LINK.sub(replace, markdown)


def cli_reference():
    """Markdown: the `--help` of `simclr-keras` and of each of its commands."""
    from simclr_keras_cli.arguments import build_parser

    with _fixed_width():
        parser = build_parser()
        sections = [("simclr-keras", parser)]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                sections += [(f"simclr-keras {n}", p) for n, p in action.choices.items()]
        parts = []
        for title, command in sections:
            if hasattr(command, "color"):
                command.color = False
            parts.append(f"## `{title}`\n\n```text\n{command.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


@contextlib.contextmanager
def _fixed_width():
    """Fix the width argparse wraps at (the terminal's), so the page is stable."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=HELP_WIDTH, NO_COLOR="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def on_page_markdown(markdown, page, config, files):
    """Fill in the CLI reference; point repository links at their copies."""
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return rewrite_repo_links(markdown, page.file.src_uri)
