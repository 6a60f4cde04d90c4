"""Feature tables: the rows of many sessions as columns, written as CSV or Parquet.

A table is a dict of equal-length numpy arrays (``str`` ids and labels, ``float64``
features) in a fixed column order: the level's id columns, then every registered feature
of that level in registration order. Files are written to a temporary name beside the
target and renamed when complete, so a failed write leaves nothing half-written.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable

import numpy as np

from .registry import features_of

__all__ = ["columns_of", "rows_to_table", "write_table", "read_table", "zscore_within"]


def columns_of(level: str) -> tuple[list[str], list[str]]:
    """(id columns, feature columns) of a table of ``level``."""
    from .extract import ID_COLUMNS_COMPARISON, ID_COLUMNS_RESPONSE

    ids = list(ID_COLUMNS_RESPONSE if level == "response" else ID_COLUMNS_COMPARISON)
    return ids, [f.name for f in features_of(level=level)]


def rows_to_table(rows: Iterable[dict], level: str) -> dict[str, np.ndarray]:
    ids, feats = columns_of(level)
    rows = list(rows)
    out: dict[str, np.ndarray] = {}
    for c in ids:
        vals = [r.get(c, "") for r in rows]
        out[c] = np.array(vals, dtype=np.int64) if vals and all(isinstance(v, (int, np.integer)) for v in vals) \
            else np.array([str(v) for v in vals], dtype=object)
    for c in feats:
        out[c] = np.array([float(r.get(c, math.nan)) for r in rows], dtype=np.float64)
    return out


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise OSError("Parquet needs pyarrow, which this installation does not have (the standalone bundle "
                      "leaves it out): write a .csv table instead") from None
    return pa, pq


def write_table(table: dict[str, np.ndarray], path: str) -> str:
    """Write ``table`` to ``path``: Parquet for ``.parquet``, else CSV (empty cell for NaN)."""
    tmp = f"{path}.partial"
    try:
        if path.lower().endswith(".parquet"):
            pa, pq = _pyarrow()

            cols = {k: (pa.array(v.tolist(), type=pa.string()) if v.dtype == object else pa.array(v))
                    for k, v in table.items()}
            pq.write_table(pa.table(cols), tmp)
        else:
            names = list(table)
            n = len(next(iter(table.values()))) if table else 0
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(names)
                for i in range(n):
                    w.writerow([_cell(table[k][i]) for k in names])
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return path


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(v) else repr(float(v))
    return str(v)


def read_table(path: str) -> dict[str, np.ndarray]:
    """A table written by :func:`write_table` (features as float64, NaN for empty)."""
    if path.lower().endswith(".parquet"):
        _pa, pq = _pyarrow()
        t = pq.read_table(path)
        return {k: (np.array(t[k].to_pylist(), dtype=object) if str(t[k].type) == "string"
                    else t[k].to_numpy(zero_copy_only=False)) for k in t.column_names}
    with open(path, newline="", encoding="utf-8") as fh:
        rd = csv.reader(fh)
        names = next(rd)
        rows = list(rd)
    out = {}
    for j, k in enumerate(names):
        col = [r[j] for r in rows]
        try:
            out[k] = np.array([float(v) if v != "" else math.nan for v in col], dtype=np.float64)
        except ValueError:
            out[k] = np.array(col, dtype=object)
    return out


def zscore_within(table: dict[str, np.ndarray], columns: list[str], by: str = "participant") -> dict[str, np.ndarray]:
    """``z_`` + column: each value against its ``by`` group's own mean and standard
    deviation (NaN where the group has fewer than two values or no spread)."""
    groups = table[by]
    out = {}
    for c in columns:
        v = table[c].astype(np.float64)
        z = np.full(len(v), math.nan)
        for gval in np.unique(groups):
            sel = (groups == gval) & np.isfinite(v)
            if sel.sum() >= 2:
                sd = v[sel].std()
                if sd > 0:
                    z[sel] = (v[sel] - v[sel].mean()) / sd
        out[f"z_{c}"] = z
    return out
