"""Headless Chromium for the tests that render a page (the HTML report, MLflow's UI), and a reader of the runs table
MLflow's UI renders (ag-grid: a row per run, ``row-id`` its run id, a cell per column, ``col-id`` its key)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does when root)"
)
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def chromium(args: list[str], profile: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """One headless Chromium run with its own profile folder (no state shared between runs or with a user)."""
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class _RunsTable(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None, str | None]] = []  # (tag, row id, column id) of each open element
        self.rows: dict[str, dict] = {}

    def handle_starttag(self, tag, attrs):
        if tag in VOID_TAGS:
            return
        a = dict(attrs)
        row = a.get("row-id") if a.get("role") == "row" else None
        col = a.get("col-id") if a.get("role") == "gridcell" else None
        if row is not None:
            self.rows.setdefault(row, {"index": int(a.get("row-index", -1)), "cells": {}})
        self.stack.append((tag, row, col))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                return

    def handle_data(self, data):
        row = next((r for _, r, _ in reversed(self.stack) if r is not None), None)
        col = next((c for _, _, c in reversed(self.stack) if c is not None), None)
        if row is not None and col is not None and data.strip():
            cells = self.rows[row]["cells"]
            cells[col] = (cells.get(col, "") + " " + data.strip()).strip()


def runs_table(dom: str) -> list[tuple[str, dict[str, str]]]:
    """(run id, {column key: text}) per row of the rendered runs table, in displayed order. A row's cells are split
    between ag-grid's pinned and scrolled containers; they share the row id."""
    parser = _RunsTable()
    parser.feed(dom)
    rows = sorted(parser.rows.items(), key=lambda kv: kv[1]["index"])
    return [(run_id, row["cells"]) for run_id, row in rows]
