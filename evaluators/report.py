"""One self-contained HTML file: tables as HTML, PNGs embedded as base64 data URIs, no external resources."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

_STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 8px 0 24px; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eee; }
figure { display: inline-block; margin: 8px 16px 24px 0; vertical-align: top; }
figure img { max-width: 560px; border: 1px solid #ddd; }
"""


def render_html_report(
    title: str, tables: list[tuple[str, pd.DataFrame]], images: list[tuple[str, bytes]]
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for caption, df in tables:
        parts.append(f"<h2>{html.escape(caption)}</h2>")
        parts.append(df.to_html(escape=True, float_format=lambda v: f"{v:.4g}", border=0))
    for caption, png in images:
        data = base64.b64encode(png).decode("ascii")
        cap = html.escape(caption)
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(
    path: str | Path, title: str, tables: list[tuple[str, pd.DataFrame]], images: list[tuple[str, bytes]]
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html_report(title, tables, images), encoding="utf-8")
    return path
