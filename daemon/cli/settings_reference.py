"""docs/configuration.md, generated from the settings model: every key with its type, default and limits.

    python -m daemon.cli.settings_reference > docs/configuration.md

A test regenerates it and fails when the committed file differs, so a new key cannot go
undocumented; config/README.md says why you would change each one.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from daemon.settings import Settings

_HEADER = """# Configuration reference

Generated from the settings model by `python -m daemon.cli.settings_reference` (a test keeps it
current). One TOML file (`--config`, `$METERD_CONFIG`, `/etc/meterd/meterd.toml`); any key can
also come from the environment as `METERD_SECTION__KEY` (`METERD_MQTT__PASSWORD=…`). Why you
would change each key: `config/README.md`. Secrets are masked wherever settings are shown.
"""


def reference() -> str:
    lines = [_HEADER]
    rows: list[tuple[str, str, str, str]] = []
    _walk(Settings, "", rows)
    section = None
    for key, kind, default, rule in rows:
        head = key.split(".")[0] if "." in key else ""
        if head != section:
            section = head
            lines += [
                "",
                f"## `[{head}]`" if head else "## Top level",
                "",
                "| key | type | default | accepted |",
                "| --- | --- | --- | --- |",
            ]
        lines.append(f"| `{key}` | {kind} | {default} | {rule} |")
    return "\n".join(lines) + "\n"


def _walk(model: type[BaseModel], prefix: str, rows: list[tuple[str, str, str, str]]) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _model_of(field.annotation)
        if nested is not None:
            listed = get_origin(field.annotation) is list
            _walk(nested, f"{key}[]." if listed else f"{key}.", rows)
            continue
        rows.append((key, _kind(field.annotation), _default(field), _rule(field)))


def _model_of(annotation: Any) -> type[BaseModel] | None:  # noqa: ANN401 - any annotation
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _kind(annotation: Any) -> str:  # noqa: ANN401 - any annotation
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f'`"{value}"`' for value in args)
    if origin == types.UnionType or str(origin) == "typing.Union":
        parts = [_kind(arg) for arg in args if arg is not type(None)]
        return " or ".join(parts) + (", optional" if type(None) in args else "")
    if origin in {list, dict}:
        return f"list of {_kind(args[0])}" if origin is list else "table"
    if args and hasattr(annotation, "__metadata__"):
        return _kind(args[0])
    names = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path", SecretStr: "secret text"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr) or (isinstance(value, list) and value and isinstance(value[0], SecretStr)):
        return "(secret)"
    return f"`{_toml(value)}`".replace("|", "\\|")


def _toml(value: object) -> str:
    """A default as it would be written in the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else json.dumps(value)
    return str(value)


def _rule(field: FieldInfo) -> str:
    marks = {Ge: ">=", Gt: ">", Le: "<=", Lt: "<", MinLen: "length >=", MaxLen: "length <="}
    parts = []
    for meta in field.metadata:
        for kind, sign in marks.items():
            if isinstance(meta, kind):
                bound = (
                    next(iter(vars(meta).values()), None)
                    if not hasattr(meta, "__slots__")
                    else (getattr(meta, meta.__slots__[0]))
                )
                parts.append(f"{sign} {bound}")
    if field.description:
        parts.append(field.description.replace("|", "\\|"))
    return "; ".join(parts) or ""


if __name__ == "__main__":
    print(reference(), end="")
