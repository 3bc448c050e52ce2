#!/usr/bin/env python3
"""EXPERIMENT, not part of the server: `chat serve` whose store writes no search terms, to measure what the index
costs the store through the running server (benchmarks/search_bench.py --parts throughput runs it against plain
`chat serve`, alternating).

    python benchmarks/experiments/no_index.py serve --db X.sqlite --port 16690 --rate 0

Only for a throwaway database: the messages it stores are never searchable (the index does not know them, and
nothing fills it in later, since the backfill only indexes messages older than the index). It patches
`ChatStore`'s `search_index` default (the switch store benchmarks use) and fails loudly if that is gone.
"""

from __future__ import annotations

import inspect
import sys

import chat.cli.main
from chat.storage import repository

_init = repository.ChatStore.__init__
if "search_index" not in inspect.signature(_init).parameters:
    sys.exit("no_index.py: ChatStore has no search_index switch any more; update this experiment")


def _no_index_init(self: repository.ChatStore, *args: object, **kwargs: object) -> None:
    kwargs["search_index"] = False
    _init(self, *args, **kwargs)  # type: ignore[arg-type]


repository.ChatStore.__init__ = _no_index_init  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "chat"
    chat.cli.main.main()
