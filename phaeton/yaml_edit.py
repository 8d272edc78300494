"""Change a YAML text so that it loads as new data, keeping every byte that need not change.

`edit_yaml(text, target)` works on the text itself, guided by the positions pyyaml's composer
gives every node: a changed value is rewritten where it stands, a new key is added after the
last entry of its mapping, a key missing from `target` is removed with its lines. Everything
else — comments, blank lines, key order, quoting, indentation, comment columns — stays as the
user wrote it. The same parser as the config loader (pyyaml, YAML 1.1) reads the text, so both
agree on what every value is; rewritten values are rendered by pyyaml's own emitter.

The editor covers the block-style mappings and lists a config is written in. It returns None
when the text is outside that (not a mapping at the top, aliases, merge keys, non-text keys,
repeated keys, invalid YAML); the caller then writes the data out whole. Callers must still load
the result and compare (phaeton.config.save_config does): YAML has corners no editor models.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

_STR_TAG = "tag:yaml.org,2002:str"
_COMMENT_AFTER = re.compile(r"( +)#")
_MAX_INLINE = 100  # a changed flow collection stays on its line up to this many characters


class _CannotEdit(Exception):
    """The text has a shape this editor does not handle."""


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str
    order: int


def edit_yaml(text: str, target: dict) -> str | None:
    """`text` changed to load as the mapping `target`, or None when it cannot be edited."""
    if not isinstance(target, dict):
        return None
    editor = _Editor(text)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            return editor.fill_empty(target)
        if not _is_block(root, yaml.MappingNode):
            return None
        _refuse_aliases(root)  # before constructing: aliases can expand without bound
        current = yaml.SafeLoader("").construct_document(root)
        if not isinstance(current, dict):
            return None
        editor.mapping(root, current, target)
        return editor.result()
    except (_CannotEdit, yaml.YAMLError, RecursionError):
        return None


def same(a: Any, b: Any) -> bool:
    """Equal as loaded YAML: same types (1, 1.0 and true differ), dicts regardless of order."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _is_block(node: yaml.Node, kind: type) -> bool:
    return isinstance(node, kind) and not node.flow_style


def _is_flow_collection(node: yaml.Node) -> bool:
    """A non-empty [..] or {..} (an empty one is where a block list or mapping goes)."""
    return isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and bool(node.flow_style) \
        and bool(node.value)


def _refuse_aliases(root: yaml.Node) -> None:
    """_CannotEdit when a node is reached twice (an alias): editing it would change both."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise _CannotEdit("alias")
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


class _Editor:
    """Collects edits of the original text, then applies them all at once."""

    def __init__(self, text: str):
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.edits: list[_Edit] = []

    # ---- the structure -----------------------------------------------------------------

    def mapping(self, node: yaml.MappingNode, current: dict, target: dict) -> None:
        """Edit a block mapping from `current` to `target`."""
        keys = []
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                raise _CannotEdit("a key that is not text (or a merge key)")
            keys.append(key_node.value)
        if len(set(keys)) != len(keys) or set(keys) != set(current):
            raise _CannotEdit("repeated keys")
        column = node.start_mark.column
        for key, (key_node, value_node) in zip(keys, node.value):
            if key not in target:
                self._delete_entry(key_node, value_node)
            elif not same(current[key], target[key]):
                self._value(key_node, value_node, current[key], target[key], column)
        added = {key: value for key, value in target.items() if key not in current}
        if added:
            where = self._line_end(self._content_end(node))
            self._insert_lines(where, self._block_lines(added), column)

    def _value(self, key_node: yaml.Node, node: yaml.Node, old: Any, new: Any,
               column: int) -> None:
        if _is_block(node, yaml.MappingNode) and isinstance(old, dict) \
                and isinstance(new, dict) and new:
            self.mapping(node, old, new)
        elif _is_block(node, yaml.SequenceNode) and isinstance(old, list) \
                and isinstance(new, list) and new:
            self._sequence(node, old, new)
        else:
            self._replace_value(key_node, node, new, column)

    def _sequence(self, node: yaml.SequenceNode, old: list, new: list) -> None:
        """Edit a block list item by item; drop the items beyond `new`, add those beyond `old`."""
        for item, before, after in zip(node.value, old, new):
            if same(before, after):
                continue
            if _is_block(item, yaml.MappingNode) and isinstance(before, dict) \
                    and isinstance(after, dict) and after:
                self.mapping(item, before, after)
            else:
                self._replace_item(item, after)
        for item in node.value[len(new):]:
            first = self._line_start(item.start_mark.index)
            if self.text[first:item.start_mark.index].strip() != "-":
                raise _CannotEdit("a list item that does not start its line")
            self._add(first, self._line_end(self._content_end(item)), "")
        if len(new) > len(old):
            where = self._line_end(self._content_end(node))
            self._insert_lines(where, self._block_lines(new[len(old):]), node.start_mark.column)

    # ---- the edits ---------------------------------------------------------------------

    def _replace_value(self, key_node: yaml.Node, node: yaml.Node, new: Any,
                       column: int) -> None:
        """Rewrite the value of a mapping entry (the key stays where it is)."""
        block = isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style
        inline = self._inline(new, flow_before=_is_flow_collection(node))
        if block:
            first = self._line_start(node.start_mark.index)
            if self.text[first:node.start_mark.index].strip():
                raise _CannotEdit("a block collection that does not start its line")
            last = self._line_end(self._content_end(node))
            if inline is not None:
                colon = self._colon_after(key_node)
                self._replace_inline(colon + 1, colon + 1, " " + inline)
                self._add(first, last, "")
            else:
                keep_column = node.start_mark.column if (
                    isinstance(new, dict) == isinstance(node, yaml.MappingNode)
                    and node.start_mark.column > column) else column + 2
                self._add(first, last, self._lines_text(self._block_lines(new), keep_column))
            return
        start, end = node.start_mark.index, self._content_end(node)
        if isinstance(node, yaml.ScalarNode) and node.style == '"' and isinstance(new, str):
            inline = _double_quoted(new) or inline
        if inline is not None:
            if start == end and self.text[start - 1:start] == ":":
                inline = " " + inline
            self._replace_inline(start, end, inline)
        else:
            self._replace_inline(start, end, "")
            self._insert_lines(self._line_end(end), self._block_lines(new), column + 2)

    def _replace_item(self, item: yaml.Node, new: Any) -> None:
        """Rewrite one item of a block list (after its `- `)."""
        start, end = item.start_mark.index, self._content_end(item)
        inline = self._inline(new, flow_before=_is_flow_collection(item))
        if inline is not None:
            self._replace_inline(start, end, inline)
            return
        lines = self._block_lines(new)
        pad = " " * item.start_mark.column
        self._add(start, end, lines[0] + "".join(self.newline + pad + line for line in lines[1:]))

    def _delete_entry(self, key_node: yaml.Node, value_node: yaml.Node) -> None:
        first = self._line_start(key_node.start_mark.index)
        if self.text[first:key_node.start_mark.index].strip():
            raise _CannotEdit("a key that does not start its line")
        self._add(first, self._line_end(self._content_end(value_node)), "")

    def _replace_inline(self, start: int, end: int, new: str) -> None:
        """Replace text[start:end] on one line, keeping a following comment in its column."""
        spaces = _COMMENT_AFTER.match(self.text, end)
        if spaces is not None and "\n" not in self.text[start:end]:
            width = len(spaces.group(1)) - (len(new) - (end - start))
            self._add(start, spaces.end(1), new + " " * max(1, width))
        else:
            self._add(start, end, new)

    def _insert_lines(self, where: int, lines: list[str], column: int) -> None:
        prefix = self.newline if where == len(self.text) and self.text \
            and not self.text.endswith("\n") else ""
        self._add(where, where, prefix + self._lines_text(lines, column))

    def fill_empty(self, target: dict) -> str:
        """A text with no document (only comments, or nothing): the data goes after it."""
        if not target:
            return self.text
        self._insert_lines(len(self.text), self._block_lines(target), 0)
        return self.result()

    def _add(self, start: int, end: int, text: str) -> None:
        self.edits.append(_Edit(start, end, text, len(self.edits)))

    def result(self) -> str:
        """The text with every edit applied."""
        text = self.text
        limit = len(text)
        for edit in sorted(self.edits, key=lambda e: (e.start, e.end, e.order), reverse=True):
            if edit.end > limit:
                raise _CannotEdit("overlapping edits")
            text = text[:edit.start] + edit.text + text[edit.end:]
            limit = edit.start
        return text

    # ---- rendering ---------------------------------------------------------------------

    def _inline(self, value: Any, *, flow_before: bool) -> str | None:
        """`value` on one line, or None when it should be written as a block: a non-empty
        collection, unless the old value was a non-empty flow collection ([a, b]) and the new
        one fits on the line."""
        if isinstance(value, (dict, list)) and value:
            if not flow_before:
                return None
            flow = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=False,
                             allow_unicode=True, width=10_000).strip()
            return flow if "\n" not in flow and len(flow) <= _MAX_INLINE else None
        return _scalar(value)

    def _block_lines(self, value: Any) -> list[str]:
        """`value` in block style (lists of plain values in flow style, as the sample writes)."""
        dumped = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, sort_keys=False,
                           allow_unicode=True, width=10_000)
        return dumped.splitlines()

    def _lines_text(self, lines: list[str], column: int) -> str:
        pad = " " * column
        return "".join(pad + line + self.newline for line in lines)

    # ---- positions ---------------------------------------------------------------------

    def _content_end(self, node: yaml.Node) -> int:
        """Where the node's own text ends: its last value, without the comments and blank
        lines a block collection's end mark also covers."""
        if _is_block(node, yaml.MappingNode) and node.value:
            return self._content_end(node.value[-1][1])
        if _is_block(node, yaml.SequenceNode) and node.value:
            return self._content_end(node.value[-1])
        end = node.end_mark.index
        while end > node.start_mark.index and self.text[end - 1] in " \t\r\n":
            end -= 1
        return end

    def _colon_after(self, key_node: yaml.Node) -> int:
        colon = key_node.end_mark.index
        while colon < len(self.text) and self.text[colon] in " \t":
            colon += 1
        if self.text[colon:colon + 1] != ":":
            raise _CannotEdit("no colon after the key")
        return colon

    def _line_start(self, index: int) -> int:
        return self.text.rfind("\n", 0, index) + 1

    def _line_end(self, index: int) -> int:
        end = self.text.find("\n", index)
        return len(self.text) if end < 0 else end + 1


class _Dumper(yaml.SafeDumper):
    """pyyaml's safe dumper, written the way the sample config is: a list of plain values on
    one line (`days: [mon, tue]`), and text that looks like a number or a time ("06:00", "0")
    double-quoted even where YAML would read it as text."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _NUMBER_LIKE.match(value) else None
    return dumper.represent_scalar(_STR_TAG, value, style=style)


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.SequenceNode:
    plain = all(not isinstance(item, (dict, list)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value,
                                     flow_style=True if plain else None)


_NUMBER_LIKE = re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?$|^[0-9]+(:[0-9]+)+$")
_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)


def _double_quoted(value: str) -> str | None:
    """`value` as a double-quoted YAML string on one line, or None."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        return text if "\n" not in text and yaml.safe_load("k: " + text) == {"k": value} else None
    except yaml.YAMLError:
        return None


def _scalar(value: Any) -> str:
    """A plain value as YAML on one line that pyyaml loads back as `value`."""
    text = yaml.dump([value], Dumper=_Dumper, default_flow_style=True, allow_unicode=True,
                     width=10_000).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if "\n" not in text and same(yaml.safe_load("k: " + text), {"k": value}):
            return text
    quoted = _double_quoted(value) if isinstance(value, str) else None
    if quoted is not None:
        return quoted
    raise _CannotEdit(f"cannot write {value!r} on one line")
