"""How ./dev test spreads the suite over its workers: test by test, but a module that shares a fixture stays whole.

With one module per worker (``--dist loadscope``), test_api.py's 46 tests ran on one core while the other had
finished early. xdist's own ``loadgroup`` reads ``xdist_group`` marks, but pytest-xdist 3.8 renames the item's
``_nodeid``, which pytest 9 no longer reads: the marks group nothing. The controller sees only node ids, so a
module's source (and the conftest.py files above it) decides: a module-scoped fixture keeps the module together,
set up once (a served console and its browser, a daemon, an SNMPv3 agent).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

_SHARED = re.compile(r"""scope=["'](module|package|class)["']""")


class SharedFixtureScheduling(LoadScopeScheduling):
    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        self._root = config.rootpath

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if _shares_fixtures(self._root, module) else nodeid


@functools.cache
def _shares_fixtures(root: Path, module: str) -> bool:
    path = root / module
    sources = [path, *(directory / "conftest.py" for directory in path.parents if directory.is_relative_to(root))]
    return any(_SHARED.search(source.read_text(encoding="utf-8")) for source in sources if source.is_file())
