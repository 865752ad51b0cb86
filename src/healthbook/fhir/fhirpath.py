"""A compiled subset of FHIRPath: the path forms used by the R4 search parameters and compartments.

Expressions outside the subset raise Unsupported; callers fall back to a general evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

_TOKEN = re.compile(r"\s*(\(|\)|\[|\]|\||\.|=|'(?:[^'\\]|\\.)*'|[A-Za-z_][A-Za-z0-9_]*|\d+)")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ANY_ROOT = frozenset({"Resource", "DomainResource"})


class Unsupported(ValueError):
    """The expression uses FHIRPath beyond the compiled subset."""


@dataclass(slots=True)
class Node:
    """A value reached by a path, with the type suffix of the choice key it came from (valueQuantity)."""

    value: Any
    choice: str | None = None


Step = Callable[[Iterator[Node], dict[str, Any]], Iterator[Node]]


class PathEvaluator(Protocol):
    """What search and compartment code needs of a compiled expression (CompiledPath or GeneralPath)."""

    def evaluate(self, resource: dict[str, Any]) -> list[Node]:
        """All nodes the expression selects in `resource`."""
        ...

    def applies_to(self, resource_type: str) -> bool:
        """Whether the expression can select something in this resource type."""
        ...


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise Unsupported(f"cannot tokenise {expr[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return out


def _child(name: str) -> Step:
    prefix_len = len(name)

    def step(nodes: Iterator[Node], _root: dict[str, Any]) -> Iterator[Node]:
        for node in nodes:
            obj = node.value
            if not isinstance(obj, dict):
                continue
            if name in obj:
                value = obj[name]  # _flatten inlined: this is the hottest loop of write-time indexing
                if isinstance(value, list):
                    for item in value:
                        if item is not None:
                            yield Node(item, None)
                elif value is not None:
                    yield Node(value, None)
                continue
            for key, val in obj.items():
                if len(key) > prefix_len and key.startswith(name) and key[prefix_len].isupper():
                    yield from _flatten(val, key[prefix_len:])

    return step


def _children(names: tuple[str, ...]) -> Step:
    """A run of child steps (a.b.c) walked over plain lists: only the last step makes Nodes."""
    last = _child(names[-1])
    if len(names) == 1:
        return last
    inner = [(name, len(name)) for name in names[:-1]]

    def step(nodes: Iterator[Node], root: dict[str, Any]) -> Iterator[Node]:
        values = [node.value for node in nodes]
        for name, prefix_len in inner:
            found: list[Any] = []
            for obj in values:
                if not isinstance(obj, dict):
                    continue
                if name in obj:
                    _add(found, obj[name])
                    continue
                for key, val in obj.items():
                    if len(key) > prefix_len and key.startswith(name) and key[prefix_len].isupper():
                        _add(found, val)
            if not found:
                return
            values = found
        yield from last(iter([Node(v, None) for v in values]), root)

    return step


def _add(out: list[Any], value: Any) -> None:
    if isinstance(value, list):
        out.extend(item for item in value if item is not None)
    elif value is not None:
        out.append(value)


def _flatten(value: Any, choice: str | None) -> Iterator[Node]:
    if isinstance(value, list):
        for item in value:
            if item is not None:
                yield Node(item, choice)
    elif value is not None:
        yield Node(value, choice)


def _as_type(type_name: str) -> Step:
    wanted = type_name[0].upper() + type_name[1:]

    def step(nodes: Iterator[Node], _root: dict[str, Any]) -> Iterator[Node]:
        for node in nodes:
            if node.choice is None or node.choice == wanted:
                yield node

    return step


def reference_type(ref: Any, root: dict[str, Any]) -> str | None:
    """The resource type a Reference points at, from its literal reference or its type element."""
    if not isinstance(ref, dict):
        return None
    literal = ref.get("reference")
    if isinstance(literal, str):
        if literal.startswith("#"):
            for res in root.get("contained", []) or []:
                if isinstance(res, dict) and res.get("id") == literal[1:]:
                    rt = res.get("resourceType")
                    return rt if isinstance(rt, str) else None
            return None
        parts = literal.split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and parts[-2][:1].isupper():
            return parts[-2]
    rtype = ref.get("type")
    return rtype if isinstance(rtype, str) else None


def _resolve_is(type_name: str) -> Step:
    def step(nodes: Iterator[Node], root: dict[str, Any]) -> Iterator[Node]:
        for node in nodes:
            if reference_type(node.value, root) == type_name:
                yield node

    return step


def _where_eq(name: str, literal: str) -> Step:
    def step(nodes: Iterator[Node], _root: dict[str, Any]) -> Iterator[Node]:
        for node in nodes:
            if isinstance(node.value, dict) and node.value.get(name) == literal:
                yield node

    return step


def _index(i: int) -> Step:
    def step(nodes: Iterator[Node], _root: dict[str, Any]) -> Iterator[Node]:
        for n, node in enumerate(nodes):
            if n == i:
                yield node
                return

    return step


def _fused(run: list[str]) -> list[Step]:
    """The run of child names as one step (emptied), or nothing."""
    if not run:
        return []
    step = _children(tuple(run))
    run.clear()
    return [step]


class _Parser:
    def __init__(self, tokens: list[str]):
        self.toks = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise Unsupported(f"expected {expected!r}, got {tok!r}")
        self.pos += 1
        return tok

    def union(self) -> list[tuple[str | None, list[Step]]]:
        parts = [self.path()]
        while self.peek() == "|":
            self.take("|")
            parts.append(self.path())
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return parts

    def path(self) -> tuple[str | None, list[Step]]:
        steps: list[Step] = []
        run: list[str] = []  # consecutive child names, fused into one step
        if self.peek() == "(":
            self.take("(")
            root, steps = self.path()
            self.take("as")
            steps = [*steps, _as_type(self.name())]
            self.take(")")
        else:
            first = self.name()
            if first[:1].isupper():
                root = first
            else:
                root = None
                run.append(first)
        while self.peek() in (".", "["):
            if self.take() == "[":
                index = self.take()
                if not index.isdigit():
                    raise Unsupported(f"index [{index}]")
                steps.extend(_fused(run))
                steps.append(_index(int(index)))
                self.take("]")
                continue
            step = self.function_or_child()
            if isinstance(step, str):
                run.append(step)
            else:
                steps.extend(_fused(run))
                steps.append(step)
        steps.extend(_fused(run))
        return root, steps

    def name(self) -> str:
        tok = self.take()
        if not _NAME.fullmatch(tok):
            raise Unsupported(f"expected a name, got {tok!r}")
        return tok

    def function_or_child(self) -> Step | str:
        """A function step, or the name of a child step (the caller fuses runs of them)."""
        name = self.name()
        if self.peek() != "(":
            return name
        self.take("(")
        if name in ("as", "ofType"):
            step = _as_type(self.name())
        elif name == "where":
            step = self.where()
        else:
            raise Unsupported(f"function {name}()")
        self.take(")")
        return step

    def where(self) -> Step:
        first = self.name()
        if first == "resolve":
            self.take("(")
            self.take(")")
            self.take("is")
            return _resolve_is(self.name())
        self.take("=")
        literal = self.take()
        if not literal.startswith("'"):
            raise Unsupported("where() with a non-string comparison")
        return _where_eq(first, literal[1:-1])


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A union of simple paths, each optionally rooted at a resource type."""

    parts: tuple[tuple[str | None, tuple[Step, ...]], ...]

    def evaluate(self, resource: dict[str, Any]) -> list[Node]:
        """All nodes the expression selects in `resource`."""
        rtype = resource.get("resourceType")
        out: list[Node] = []
        for root, steps in self.parts:
            if root is not None and root != rtype and root not in _ANY_ROOT:
                continue
            nodes: Iterator[Node] = iter((Node(resource),))
            for step in steps:
                nodes = step(nodes, resource)
            out.extend(nodes)
        return out

    def applies_to(self, resource_type: str) -> bool:
        """Whether any part of the union can select something in this resource type."""
        return any(root is None or root == resource_type or root in _ANY_ROOT for root, _ in self.parts)


@lru_cache(maxsize=4096)
def compile_path(expression: str) -> CompiledPath:
    """Compile once, evaluate many times; raises Unsupported outside the subset."""
    flag = _PRESENT_NOT_FALSE.match(expression.strip())
    if flag and flag.group(1) == flag.group(2):
        # "X.exists() and X != false" (Patient.deceased): true when X is present and not false, else
        # false (FHIRPath: `false and {}` is false), so a Patient without deceased[x] indexes `false`.
        inner = compile_path(flag.group(1))
        root = inner.parts[0][0] if len(inner.parts) == 1 else None
        return CompiledPath(((root, (_present_not_false(inner),)),))
    parts = _Parser(_tokens(expression)).union()
    return CompiledPath(tuple((root, tuple(steps)) for root, steps in parts))


_PRESENT_NOT_FALSE = re.compile(r"^([A-Za-z.]+)\.exists\(\) and ([A-Za-z.]+) != false$")


def _present_not_false(inner: CompiledPath) -> Step:
    def step(nodes: Iterator[Node], root: dict[str, Any]) -> Iterator[Node]:
        for _ in nodes:
            found = inner.evaluate(root)
            yield Node(bool(found) and not all(n.value is False for n in found))
            return

    return step
