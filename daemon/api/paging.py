"""Lists come a page at a time: ``?limit=&offset=``, and ``next_offset`` says where the next page starts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

T = TypeVar("T")
MAX_LIMIT = 1000


class Page(BaseModel, Generic[T]):
    items: list[T]
    offset: int
    limit: int
    next_offset: int | None


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")]


def page(items: Sequence[T], offset: int, limit: int) -> Page[T]:
    chosen = list(items[offset : offset + limit])
    more = len(items) > offset + limit
    return Page[T](items=chosen, offset=offset, limit=limit, next_offset=offset + limit if more else None)
