"""A reader for the GraphQL subset our Linear client sends: named queries, fields with aliases
and arguments, variables; fragments, directives and mutations are refused as Linear would."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emulator.linear_errors import invalid_query

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<spread>\.\.\.)
      | (?P<var>\$[_A-Za-z][_0-9A-Za-z]*)
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[{}():!\[\]=@])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass(frozen=True)
class QueryField:
    alias: str
    name: str
    args: tuple[tuple[str, Any], ...]
    selection: tuple[QueryField, ...]

    def arg(self, name: str, variables: dict[str, Any], default: Any = None) -> Any:
        for key, value in self.args:
            if key == name:
                if isinstance(value, Variable):
                    return variables.get(value.name, default)
                return value
        return default


class _Reader:
    def __init__(self, text: str) -> None:
        source = re.sub(r"#[^\n]*", "", text).replace(",", " ")
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(source):
            if source[position:].strip() == "":
                break
            match = _TOKEN.match(source, position)
            if match is None:
                raise invalid_query(f"Syntax Error: Unexpected character at {position}.")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.index] if self.index < len(self.tokens) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "eof" or (value is not None and token[1] != value):
            raise invalid_query(f"Syntax Error: Expected {value or 'a token'}, found {token[1]!r}.")
        self.index += 1
        return token

    def document(self) -> tuple[QueryField, ...]:
        kind, value = self.peek()
        if kind == "name" and value in ("mutation", "subscription"):
            raise invalid_query(f"The emulator does not support {value} operations.")
        if kind == "name" and value == "query":
            self.take()
            if self.peek()[0] == "name":
                self.take()
            if self.peek()[1] == "(":
                self._skip_balanced("(", ")")
        selection = self.selection_set()
        if self.peek()[0] != "eof":
            raise invalid_query("The emulator accepts exactly one operation per document.")
        return selection

    def _skip_balanced(self, opening: str, closing: str) -> None:
        depth = 0
        while True:
            _, value = self.take()
            depth += (value == opening) - (value == closing)
            if depth == 0:
                return

    def selection_set(self) -> tuple[QueryField, ...]:
        self.take("{")
        fields: list[QueryField] = []
        while self.peek()[1] != "}":
            kind, _ = self.peek()
            if kind == "spread":
                raise invalid_query("The emulator does not support fragments.")
            if kind != "name":
                raise invalid_query(f"Syntax Error: Unexpected {self.peek()[1]!r}.")
            fields.append(self.field())
        self.take("}")
        return tuple(fields)

    def field(self) -> QueryField:
        _, alias = self.take()
        name = alias
        if self.peek()[1] == ":":
            self.take(":")
            kind, name = self.take()
            if kind != "name":
                raise invalid_query("Syntax Error: Expected a field name after the alias.")
        args: list[tuple[str, Any]] = []
        if self.peek()[1] == "(":
            self.take("(")
            while self.peek()[1] != ")":
                kind, key = self.take()
                if kind != "name":
                    raise invalid_query("Syntax Error: Expected an argument name.")
                self.take(":")
                args.append((key, self.value()))
            self.take(")")
        if self.peek()[1] == "@":
            raise invalid_query("The emulator does not support directives.")
        selection = self.selection_set() if self.peek()[1] == "{" else ()
        return QueryField(alias=alias, name=name, args=tuple(args), selection=selection)

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "var":
            return Variable(value[1:])
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "string":
            return json.loads(value)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(value, value)
        raise invalid_query("The emulator only accepts variables and scalars as arguments.")


@lru_cache(maxsize=64)
def parse_query(query: str) -> tuple[QueryField, ...]:
    return _Reader(query).document()
