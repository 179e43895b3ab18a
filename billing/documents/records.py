"""Invoices and their lines as plain JSON-ready records, for scripts and ERP imports (`--format json`).

Money and quantities are strings (Decimal, never float); every usage line carries its read
pairs, one per device x held piece x segment, so nobody parses a box table.
"""

from __future__ import annotations

from typing import Any

from billing.invoicing import USAGE, Draft, InvoiceLine, line_pairs


def line_record(line: InvoiceLine) -> dict[str, Any]:
    """One line: what it bills, how it was priced, the reads behind it and what to look at."""
    detail = line.provenance
    tiers = detail.get("tiers") or []
    unit_price = detail.get("base_fee") if line.kind != USAGE else (tiers[0]["price"] if len(tiers) == 1 else None)
    pairs = [
        {
            "device": device,
            "meter": pair.get("meter") or line.meter,
            "segment": pair["segment"],
            "start": _read(pair["start"]),
            "end": _read(pair["end"]),
            "pages": pair["pages"],
            "meter_not_reported": bool(pair.get("reports")),
            "device_reports": pair.get("reports", []),
        }
        for device, pair in line_pairs(line)
    ]
    return {
        "kind": line.kind,
        "description": line.description,
        "customer": line.customer,
        "contract": line.contract,
        "device": line.device,
        "meter": line.meter,
        "pool": line.pool,
        "service_start": line.service.start.isoformat(),
        "service_end": line.service.end.isoformat(),  # exclusive
        "quantity": str(line.quantity),
        "unit_price": unit_price,
        "pages": detail.get("pages"),
        "included": detail.get("included"),
        "tiering": detail.get("tiering"),
        "tiers": tiers,
        "amount": str(line.amount),
        "tax_rate": str(line.tax_rate),
        "flags": _flags(line, pairs),
        "read_pairs": pairs,
    }


def draft_record(draft: Draft, *, invoice_id: int | None, state: str) -> dict[str, Any]:
    """A computed draft (a preview or a run) with its lines and checks."""
    sums = draft.totals
    return {
        "invoice_id": invoice_id,
        "customer": draft.payer,
        "period": draft.month.label,
        "state": state,
        "currency": draft.currency,
        "net": str(sums.net),
        "tax": str(sums.tax),
        "total": str(sums.total),
        "lines": [line_record(line) for line in draft.lines],
        "checks": draft.checks,
    }


def _read(read: dict[str, Any]) -> dict[str, Any]:
    return {
        "value": read.get("value"),
        "at": read.get("at"),
        "estimated": bool(read.get("estimated")),
        "first_read": bool(read.get("first_read")),
        "restart": bool(read.get("restart")),
    }


def _flags(line: InvoiceLine, pairs: list[dict[str, Any]]) -> list[str]:
    checks = {
        "estimated": line.estimated,
        "held": line.held,
        "adjustment": line.adjustment,
        "first_read": any(pair["start"]["first_read"] for pair in pairs),
        "reset": any(pair["start"]["restart"] for pair in pairs),
        "meter_not_reported": any(pair["meter_not_reported"] for pair in pairs),
        "no_reads": any(pair["start"]["value"] is None and not pair["meter_not_reported"] for pair in pairs),
    }
    return [flag for flag, on in checks.items() if on]
