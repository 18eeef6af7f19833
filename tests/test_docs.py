"""The documentation site stays complete and its links hold.

The full check is `mkdocs build --strict` (CI runs it); these are the fast
parts that need no MkDocs: every public name has an API reference entry,
every command has a section in the generated CLI reference, every page is in
the navigation, and the README's links point at files that exist.
"""

import importlib
import importlib.util
import os
import re

import pytest
import testing

import simclr_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
API = os.path.join(DOCS, "reference", "api")
SUBPACKAGES = ("backbones", "data", "evaluation", "layers", "training")


def _resolve(path):
    """The object that a `::: path` directive renders. Like mkdocstrings, the
    longest importable module prefix wins: `simclr_keras.data.pseudo_labels`
    is the module, so the function is `...pseudo_labels.pseudo_labels`.
    """
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _directives():
    """`{page: [dotted path of each ::: directive]}` of the API reference."""
    found = {}
    for name in sorted(os.listdir(API)):
        if name.endswith(".md"):
            with open(os.path.join(API, name), encoding="utf-8") as f:
                found[name] = re.findall(r"^::: ([\w.]+)\s*$", f.read(), re.M)
    return found


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", os.path.join(DOCS, "hooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestApiReference(testing.TestCase):
    def test_every_public_name_is_in_the_api_reference(self):
        documented = {id(_resolve(path)) for paths in _directives().values() for path in paths}
        public = {f"simclr_keras.{n}": getattr(simclr_keras, n) for n in simclr_keras.__all__}
        for sub in SUBPACKAGES:
            module = importlib.import_module(f"simclr_keras.{sub}")
            public.update({f"simclr_keras.{sub}.{n}": getattr(module, n) for n in module.__all__})
        missing = sorted(name for name, obj in public.items() if id(obj) not in documented)
        assert not missing, f"add a '::: NAME' line to a page of docs/reference/api/: {missing}"

    def test_api_reference_names_only_what_exists(self):
        for page, paths in _directives().items():
            assert paths or page == "index.md", f"{page} documents nothing"
            for path in paths:
                _resolve(path)  # raises for a name that is gone


class TestPagesAndLinks(testing.TestCase):
    def test_cli_reference_has_every_command(self):
        pytest.importorskip("mkdocs")
        from simclr_keras_cli.main import COMMANDS

        with open(os.path.join(DOCS, "reference", "cli.md"), encoding="utf-8") as f:
            assert _hooks().CLI_MARKER in f.read()
        page = _hooks().cli_reference()
        for command in COMMANDS:
            assert f"## `simclr-keras {command}`" in page
            assert f"usage: simclr-keras {command}" in page

    def test_every_page_is_in_the_navigation(self):
        with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as f:
            nav = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", f.read(), re.M))
        pages = {
            os.path.relpath(os.path.join(folder, name), DOCS).replace(os.sep, "/")
            for folder, _, names in os.walk(DOCS)
            for name in names
            if name.endswith(".md")
        }
        assert pages == nav, f"not in mkdocs.yml: {pages - nav}; missing: {nav - pages}"

    def test_readme_links_point_at_files(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        local = [t for t in targets if "://" not in t]
        assert local, "the README links to its documentation pages"
        missing = [t for t in local if not os.path.exists(os.path.join(ROOT, t))]
        assert not missing, f"README links to missing files: {missing}"
