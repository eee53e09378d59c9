"""Which customers a command works on: ``--customer ID`` (repeatable) and ``--shard I/N``.

Selection is applied to spec files by the customer id they describe. Reading that id must be
cheap at fleet scale (a shard of a thousand large specs must not load all of them), so a file's
id is read from the start of its YAML event stream, stopping at ``customer.id``; only a file
whose id cannot be read that way (a syntax error before it, an alias, an unusual layout) is
loaded whole and decided by the id the loader finds. A file whose customer cannot be read at
all belongs to no shard: shard 1 reports it, so merged shard results report it exactly once,
and ``--customer`` reports it too (it may be the very file being edited).

A shard is a fixed function of the customer id alone: the first 8 bytes of the SHA-256 of its
decimal text, modulo N. It is the same in every run and every Python version (unlike the
salted ``hash``), every customer is in exactly one shard, and adding a customer moves no other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from reconciler.errors import UsageError
from reconciler.spec import LoadedSpec
from reconciler.specfiles import is_symlink_escape
from reconciler.yamlload import INT, Limits, SpecLoader, plain_tag, read_text

_SHARD = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")


def shard_of(customer_id: int, count: int) -> int:
    """The shard (1..count) that holds ``customer_id``."""
    digest = hashlib.sha256(str(customer_id).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` with 1 <= I <= N; anything else is a usage error."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise UsageError(f"--shard {text!r}: expected I/N, e.g. 1/4")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise UsageError(f"--shard {text}: I must be between 1 and N (N at least 1)")
        return cls(index, count)

    def holds(self, customer_id: int) -> bool:
        return shard_of(customer_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Selection:
    """The customers a run covers; ``Selection()`` covers every customer and costs nothing."""

    customers: frozenset[int] | None = None
    shard: Shard | None = None

    @classmethod
    def of(cls, customers: Iterable[int] = (), shard: str | Shard | None = None) -> Selection:
        chosen = frozenset(customers)
        parsed = Shard.parse(shard) if isinstance(shard, str) else shard
        return cls(chosen or None, parsed)

    @property
    def active(self) -> bool:
        return self.customers is not None or self.shard is not None

    def wants(self, customer_id: int) -> bool:
        if self.customers is not None and customer_id not in self.customers:
            return False
        return self.shard is None or self.shard.holds(customer_id)

    @property
    def keeps_unreadable(self) -> bool:
        """Does this selection report files whose customer cannot be read?"""
        return self.shard is None or self.shard.index == 1

    def describe(self) -> str:
        parts = []
        if self.customers is not None:
            parts.append("customer " + ", ".join(str(c) for c in sorted(self.customers)))
        if self.shard is not None:
            parts.append(f"shard {self.shard}")
        return " in ".join(parts) if parts else "every customer"

    def prefilter(self, files: list[str]) -> SelectedFiles:
        """The files that may belong to the selection, read as cheaply as possible."""
        if not self.active:
            return SelectedFiles(list(files), set(), {})
        kept: list[str] = []
        undecided: set[str] = set()
        found: dict[str, int] = {}
        for path in files:
            customer_id = spec_customer_id(path)
            if customer_id is None:
                kept.append(path)
                undecided.add(path)
            else:
                found[path] = customer_id
                if self.wants(customer_id):
                    kept.append(path)
        return SelectedFiles(kept, undecided, found)

    def missing(self, seen: Iterable[int]) -> list[int]:
        """Customers named by --customer (and in the shard, if any) that no spec file describes."""
        if self.customers is None:
            return []
        return sorted(c for c in self.customers - set(seen) if self.shard is None
                      or self.shard.holds(c))


@dataclass
class SelectedFiles:
    """Files to load; those in ``undecided`` are kept or dropped once loaded (see ``admits``)."""

    files: list[str]
    undecided: set[str]
    ids: dict[str, int]

    def admits(self, selection: Selection, loaded: LoadedSpec) -> bool:
        if not selection.active or loaded.file not in self.undecided:
            return True
        customer_id = loaded.customer_id
        if customer_id is None:
            return selection.keeps_unreadable
        return selection.wants(customer_id)


def spec_customer_id(path: str, limits: Limits | None = None) -> int | None:
    """``customer.id`` of a spec file, read from the start of the file; None when unsure."""
    if is_symlink_escape(path):
        return None
    text, _problem = read_text(path, path, limits or Limits.from_env())
    if text is None:
        return None
    return customer_id_in_text(text)


def customer_id_in_text(text: str) -> int | None:
    """The id the loader would give ``customer.id``, from the events up to it; None when unsure.

    Anything unusual (an alias, a tag, a non-scalar key, a syntax error) answers None, and the
    caller loads the file whole: this function may be unsure, never wrong.
    """
    loader = SpecLoader(text)
    try:
        return _walk(loader)
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def _walk(loader: SpecLoader) -> int | None:
    events = iter(lambda: loader.get_event() if loader.check_event() else None, None)
    for event in events:
        if isinstance(event, yaml.MappingStartEvent):
            break  # the document's root mapping
        if isinstance(event, (yaml.SequenceStartEvent, yaml.ScalarEvent, yaml.AliasEvent)):
            return None
    else:
        return None
    # Alternate keys and values of the root mapping until the key "customer".
    for event in events:
        if isinstance(event, yaml.MappingEndEvent):
            return None
        if not isinstance(event, yaml.ScalarEvent):
            return None
        if event.value == "customer" and event.tag is None:
            value = next(events, None)
            if not isinstance(value, yaml.MappingStartEvent) or value.tag not in (None, "!"):
                return None
            return _customer_id(events)
        if not _skip_value(events):
            return None
    return None


def _customer_id(events: Iterable[yaml.Event]) -> int | None:
    iterator = iter(events)
    for event in iterator:
        if not isinstance(event, yaml.ScalarEvent):
            return None  # the end of the mapping, or a key we cannot read
        if event.value == "id":
            value = next(iterator, None)
            if not isinstance(value, yaml.ScalarEvent) or not value.implicit[0] or value.tag:
                return None
            if plain_tag(value.value) != INT:
                return None
            node = ScalarNode(INT, value.value)
            try:
                return int(SafeConstructor().construct_yaml_int(node))
            except ValueError:
                return None
        if not _skip_value(iterator):
            return None
    return None


def _skip_value(events: Iterable[yaml.Event]) -> bool:
    """Consume one value (a scalar or a whole collection); False when the stream is unusual."""
    depth = 0
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            return False
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        if depth == 0:
            return True
    return False
