"""Rasa YAML read and written back with ruamel.yaml's round trip: comments, key order, quoting and indentation of
everything staff did not touch stay byte for byte as they were, so a developer's `git diff` shows only the edit."""

from __future__ import annotations

import copy
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent


class _NullRepresenter(RoundTripRepresenter):
    """Writes None as `null` (Rasa's files spell it out: `active_loop: null`), not as an empty value."""


_NullRepresenter.add_representer(
    type(None), lambda representer, _data: representer.represent_scalar("tag:yaml.org,2002:null", "null")
)


class YamlFile:
    """One YAML file loaded for editing; `save()` writes it back in the file's own indentation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = path.read_text(encoding="utf-8")
        _, sequence_indent, offset = load_yaml_guess_indent(self.original)
        self._yaml = YAML()  # round trip
        self._yaml.Representer = _NullRepresenter
        self._yaml.preserve_quotes = True
        self._yaml.width = 4096  # never re-wrap long lines (Chinese text has no spaces to wrap at anyway)
        self._yaml.indent(mapping=2, sequence=sequence_indent or 2, offset=offset or 0)
        self.data: Any = self._yaml.load(self.original)

    def dumps(self) -> str:
        out = io.StringIO()
        self._yaml.dump(self.data, out)
        return out.getvalue()

    def save(self) -> bool:
        """Write the file (atomically) if its text changed; True when it did."""
        text = self.dumps()
        if text == self.original:
            return False
        write_atomically(self.path, text)
        self.original = text
        return True


def write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def examples_block(examples: list[str]) -> LiteralScalarString:
    """Rasa's `examples: |` block: one `- example` line each."""
    return LiteralScalarString("".join(f"- {example}\n" for example in examples))


def parse_examples(block: str | None) -> list[str]:
    """The examples of an `examples: |` block, in order (annotations such as [x](entity) kept as written)."""
    examples = []
    for line in (block or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            examples.append(stripped[2:].strip())
        elif stripped == "-":
            continue
    return examples


# ---- appending without stealing the blank line that follows the block ----------------------------------------------
# ruamel keeps the blank lines and comments that follow a node as a comment token on the last scalar inside it. An
# entry appended at the end would land after that token ("- last\n\n- new\nnext_key:"), so the token moves to the new
# entry, and the previous entry gets the file's usual blank-line separator when its siblings have one.


def _last_slot(node: Any) -> tuple[Any, Any, int] | None:
    """(container, key, position in the comment list) of the last scalar inside `node`, or None."""
    if isinstance(node, CommentedMap) and len(node):
        key = list(node.keys())[-1]
        if isinstance(node[key], CommentedMap | CommentedSeq) and len(node[key]):
            return _last_slot(node[key])
        return node, key, 2
    if isinstance(node, CommentedSeq) and len(node):
        index = len(node) - 1
        if isinstance(node[index], CommentedMap | CommentedSeq) and len(node[index]):
            return _last_slot(node[index])
        return node, index, 0
    return None


def _get_trailing(node: Any) -> Any:
    slot = _last_slot(node)
    if slot is None:
        return None
    container, key, position = slot
    entry = container.ca.items.get(key)
    return entry[position] if entry and len(entry) > position else None


def _set_trailing(node: Any, token: Any) -> None:
    slot = _last_slot(node)
    if slot is None:
        return
    container, key, position = slot
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    entry[position] = token


def _child(container: Any, index: int) -> Any:
    if isinstance(container, CommentedMap):
        key = list(container.keys())[index]
        return container[key] if isinstance(container[key], CommentedMap | CommentedSeq) else (container, key)
    return container[index] if isinstance(container[index], CommentedMap | CommentedSeq) else (container, index)


def _trailing_of_child(container: Any, index: int) -> Any:
    child = _child(container, index)
    if isinstance(child, tuple):
        parent, key = child
        entry = parent.ca.items.get(key)
        position = 2 if isinstance(parent, CommentedMap) else 0
        return entry[position] if entry and len(entry) > position else None
    return _get_trailing(child)


def _set_trailing_of_child(container: Any, index: int, token: Any) -> None:
    child = _child(container, index)
    if isinstance(child, tuple):
        parent, key = child
        position = 2 if isinstance(parent, CommentedMap) else 0
        entry = parent.ca.items.setdefault(key, [None, None, None, None])
        entry[position] = token
    else:
        _set_trailing(child, token)


def append_entry(container: CommentedMap | CommentedSeq, value: Any, key: Any = None) -> None:
    """Append `value` (under `key` for a mapping) as the last entry, laid out like its siblings."""
    count = len(container)
    trailing = _trailing_of_child(container, count - 1) if count else None
    separator = None
    for index in range(count - 2, max(count - 5, -1), -1):  # the nearest siblings' usual separator
        separator = _trailing_of_child(container, index)
        if separator is not None:
            break
    if separator is not None and getattr(separator, "value", "x").strip() != "":
        separator = None  # a comment that introduces the next sibling, not a plain blank line
    if count:
        _set_trailing_of_child(container, count - 1, copy.deepcopy(separator))
    if isinstance(container, CommentedMap):
        container[key] = value
    else:
        container.append(value)
    if trailing is not None:
        _set_trailing_of_child(container, count, trailing)
