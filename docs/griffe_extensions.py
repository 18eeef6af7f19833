"""A griffe extension for the API reference (named in mkdocs.yml).

The docstrings end with an `Example:` line followed by doctest lines at the
same indentation (Keras' style). Griffe's Google parser reads that as plain
text, so Markdown would render the `>>>` lines as block quotes (and
`res[0.05]["accuracy"]` as a link). This puts each such example in a
fenced Python block, in the rendered copy only.
"""

import griffe


def fence_examples(text):
    """`text` with each `Example:` line's following lines in a ```python fence."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if line.strip() != "Example:":
            continue
        indent = line[: len(line) - len(line.lstrip())]
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        if block:
            out += ["", f"{indent}```python", *block, f"{indent}```"]
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    """Fence the doctest lines of `Example:` sections."""

    def on_instance(self, *, obj, **kwargs):
        """Rewrite `obj`'s docstring."""
        if obj.docstring is not None:
            obj.docstring.value = fence_examples(obj.docstring.value)
