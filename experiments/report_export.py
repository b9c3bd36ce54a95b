"""Executed analysis notebook -> one self-contained HTML file (no code, images embedded)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter


def export_html(executed_notebook: Path, out_html: Path, title: str) -> Path:
    notebook = nbformat.read(executed_notebook, as_version=4)
    notebook.metadata["title"] = title
    exporter = HTMLExporter(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    body, _resources = exporter.from_notebook_node(notebook)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(body, encoding="utf-8")
    return out_html
