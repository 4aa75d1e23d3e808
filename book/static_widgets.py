"""Static stand-ins for the ipywidgets outputs of an executed notebook.

An executed notebook stores a widget output as a reference, ``{"model_id": ...}``, into the
widget state saved in ``metadata.widgets``; drawing it needs a JavaScript widget manager and a
kernel to call back. The site has neither, so each widget output is replaced by what the
learner would have seen when the notebook was executed:

* an ``interact`` (sliders and an Output widget): the outputs captured by its Output widget
  (the stored figure), followed by a note that names the controls, their stored values and
  how to get the live version;
* a progress bar (tqdm's HBox of HTML and FloatProgress): one line of text, as in a terminal;
* anything else: the plain-text fallback the kernel sent with the widget.

The saved widget state is then dropped, so that the site builder adds no widget renderer.
"""
from __future__ import annotations

import html
import re

import nbformat

VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
CONTROL_MODELS = ("SliderModel", "DropdownModel", "CheckboxModel", "ToggleButtonsModel",
                  "RadioButtonsModel", "TextModel", "IntTextModel", "FloatTextModel")


def widget_state(nb: nbformat.NotebookNode) -> dict[str, dict]:
    """model_id -> {"model_name": ..., "state": {...}} from the notebook's saved widget state."""
    return nb.metadata.get("widgets", {}).get(STATE_MIME, {}).get("state", {})


def models_under(model_id: str, state: dict[str, dict]) -> list[dict]:
    """The model ``model_id`` and all its descendants (children of boxes), depth first."""
    model = state.get(model_id)
    if model is None:
        return []
    found = [model]
    for ref in model["state"].get("children", []):
        found += models_under(ref.removeprefix("IPY_MODEL_"), state)
    return found


def _html_text(value: str) -> str:
    """The visible text of an HTML widget's value (tags removed, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", value)).replace("\u2007", " ")


def progress_line(models: list[dict], width: int = 20) -> str | None:
    """tqdm's progress bar as one line of text, or None when ``models`` holds no progress bar."""
    parts = []
    for m in models:
        s = m["state"]
        if m["model_name"] == "HTMLModel":
            parts.append(_html_text(s.get("value", "")))
        elif m["model_name"] in ("FloatProgressModel", "IntProgressModel"):
            span = float(s.get("max", 1)) - float(s.get("min", 0))
            done = (float(s.get("value", 0)) - float(s.get("min", 0))) / span if span else 0.0
            n = round(width * min(max(done, 0.0), 1.0))
            parts.append("|" + "\u2588" * n + " " * (width - n) + "|")
    if not any(p.startswith("|") for p in parts):
        return None
    return "".join(parts)


def controls(models: list[dict]) -> list[tuple[str, object]]:
    """(description, stored value) of each input control (slider, dropdown, ...) in ``models``."""
    return [(m["state"].get("description", ""), m["state"].get("value"))
            for m in models if m["model_name"].endswith(CONTROL_MODELS)]


def interactive_note(notebook_path: str, found: list[tuple[str, object]]) -> str:
    """A MyST note placed under an interactive cell: what is shown and how to get it live."""
    names = ", ".join(f"`{d or 'control'}` = {v}" for d, v in found)
    return (":::{note}\n"
            f"**Interactive cell.** The figure above is the one stored for {names}. To move "
            f"the control and redraw the figure, open `{notebook_path}` in JupyterLab "
            "(`jupyter lab notebooks/` after the install in the README's quick start), then "
            "*Run > Run All Cells*.\n:::")


def static_output(output: dict, state: dict[str, dict]) -> tuple[list[dict], list]:
    """Outputs standing in for one widget output, and the controls it had (empty if none)."""
    models = models_under(output["data"][VIEW_MIME]["model_id"], state)
    captured = [o for m in models if m["model_name"] == "OutputModel"
                for o in m["state"].get("outputs", [])]
    line = progress_line(models)
    if line is not None:
        return [nbformat.v4.new_output("stream", name="stderr", text=line + "\n")], []
    if captured:
        return [nbformat.from_dict(o) for o in captured], controls(models)
    fallback = {k: v for k, v in output["data"].items() if k != VIEW_MIME}
    return ([nbformat.v4.new_output("display_data", data=fallback)] if fallback else []), []


def make_static(nb: nbformat.NotebookNode, notebook_path: str) -> int:
    """Replace every widget output of ``nb`` in place; returns the number of interactive cells.

    ``notebook_path`` is the repository path named in the notes (e.g. notebooks/01_x.ipynb).
    """
    state = widget_state(nb)
    cells, n_interactive = [], 0
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type != "code":
            continue
        outputs, found = [], []
        for out in cell.outputs:
            if VIEW_MIME in out.get("data", {}):
                new, ctl = static_output(out, state)
                outputs += new
                found += ctl
            else:
                outputs.append(out)
        cell.outputs = outputs
        if found:
            n_interactive += 1
            cells.append(nbformat.v4.new_markdown_cell(interactive_note(notebook_path, found)))
    nb.cells = cells
    nb.metadata.pop("widgets", None)
    return n_interactive
