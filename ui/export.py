"""Take a model away: for each export format, a button that makes the file once, then one that downloads it."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mnist_core.export import FORMATS, NAMES, ExportError, ensure_export, ready_export


def export_buttons(container, model_path: Path, file_stem: str, key: str, folder: Path | None = None) -> None:
    """In `container`: 'Download ONNX' / 'Download TFLite' where the export exists, else 'Make ONNX file' etc.,
    which writes it (about ten seconds: a TensorFlow import in a child process) and reruns the page."""
    for fmt in FORMATS:
        data = _read(ready_export(model_path, fmt, folder))
        if data is not None:
            # The bytes themselves (~70 KB), not a deferred reader: a deferred one was lost between reruns.
            container.download_button(f"Download {NAMES[fmt]}", data, mime="application/octet-stream",
                                      file_name=f"{file_stem}{FORMATS[fmt]}", key=f"download_{fmt}_{key}")
        elif container.button(f"Make {NAMES[fmt]} file", key=f"export_{fmt}_{key}",
                              help=f"Export this model as {NAMES[fmt]} to run it outside the lab"):
            try:
                with st.spinner(f"Exporting {NAMES[fmt]}..."):
                    ensure_export(model_path, fmt, folder)
            except ExportError as err:
                st.error(str(err))
            else:
                st.rerun()


def _read(path: Path | None) -> bytes | None:
    try:
        return None if path is None else path.read_bytes()
    except OSError:  # deleted with its run by another visitor since: offer to make it again
        return None
