"""One self-contained, offline HTML report of a run (``tune report``, the Evaluate page's "Export report…").

The file carries everything inline — styles, the training curves as SVG
polylines, the scorecards — and links to nothing: no scripts, fonts or images
from the network (see docs/architecture.md, "Evaluation").  Sections: the
configuration, the data files (sha256, rows), the environment, the training
curves, each evaluation's scorecard, verdicts and per-question table, sample
answers with their sources, and the exports (sha256, size, parity) when
``<run>/exports/*/parity.json`` exist.
"""

from __future__ import annotations

import html
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from backend import events as ev
from backend import runs
from backend.errors import RunError
from backend.fsutil import atomic_write_text, read_json, sha256_file

MODE_LABELS = {"tuned+rag": "tuned + documents", "tuned": "tuned", "base+rag": "base + documents", "base": "base"}
QUOTED_NOTE = "Quoted from your documents — not the model's words"
METRIC_LABELS = {"accuracy": "Accuracy (shown)", "own_accuracy": "Accuracy (model's own words)", "f1": "Token F1", "similarity": "Similarity",
                 "retrieval_hit_rate": "Retrieval hit rate", "abstention": "Abstention (unanswerable)",
                 "false_abstention": "False abstention (answerable)"}
SAMPLE_ANSWERS = 6
COLOURS = {"tuned+rag": "#1b7f5b", "tuned": "#5aa487", "base+rag": "#3a64b0", "base": "#8ea6d6"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#1d1d1f;
line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ddd;padding:.3em .55em;
vertical-align:top;text-align:left}th{background:#f4f4f6}td.num{text-align:right;white-space:nowrap}
.ok{background:#dff3e6}.bad{background:#fbe1e1}.na{color:#999}.muted{color:#666;font-size:.9em}
pre{background:#f6f6f8;padding:.8em;overflow:auto;font-size:.85em}.tag{display:inline-block;padding:0 .4em;
border-radius:.6em;background:#eee;margin-right:.2em;font-size:.85em}.flag{color:#a40000;font-weight:600}
.answers td{width:25%}.src{font-size:.85em;color:#555}.quoted{font-size:.85em;color:#8a5a00;font-style:italic}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fig(fig: dict | None, percent: bool = True) -> str:
    from backend.rag.evaluate import format_figure

    return _e(format_figure(fig, percent=percent))


# ---------------------------------------------------------------------------
# sections


def _part(d: Any, key: str) -> dict[str, Any]:
    """``d[key]`` when both are objects, else ``{}`` (a run folder's files may hold anything)."""
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def _when(v: Any) -> Any:
    """A time stamp as a date, when it is one a calendar can show; anything else as it is."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v)) if 0 < v < 1e11 else str(v)
    return v


def _config_section(cfg: dict[str, Any]) -> str:
    model = _part(cfg, "model").get("name_or_path", "")
    method = _part(cfg, "method")
    tr = _part(cfg, "training")
    data = _part(cfg, "data")
    rows = [("Base model", model), ("Method", method.get("method")),
            ("LoRA rank / alpha / dropout", f"{method.get('lora_r')} / {method.get('lora_alpha')} / "
                                            f"{method.get('lora_dropout')}" if method.get("lora_r") else None),
            ("Learning rate", tr.get("learning_rate")), ("Epochs / max steps", f"{tr.get('epochs')} / {tr.get('max_steps')}"),
            ("Batch size × accumulation", f"{tr.get('batch_size')} × {tr.get('gradient_accumulation')}"),
            ("Max length", data.get("max_length")), ("Validation split", data.get("validation_split")),
            ("Seed", tr.get("seed"))]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    return (f"<h2>Configuration</h2><table>{body}</table>"
            f"<details><summary>Full config.json</summary><pre>{_e(json.dumps(cfg, indent=2, ensure_ascii=False))}"
            "</pre></details>")


def _data_rows(path: Path, known: dict[str, dict]) -> Any:
    rep = known.get(str(path)) or known.get(path.name)
    if rep and isinstance(rep.get("rows_read"), int):
        return rep["rows_read"]
    try:
        from backend.data.readers import read_file

        return len(read_file(path).rows)
    except Exception:  # noqa: BLE001 - a report describes what it can; an unreadable file shows "—"
        return None


def _data_section(run: Path, cfg: dict[str, Any]) -> str:
    data = _part(cfg, "data")
    try:
        report = read_json(runs.data_report_path(run), {})
    except (OSError, ValueError):
        report = {}
    report = report if isinstance(report, dict) else {}
    known: dict[str, dict] = {}
    listed = [f for part in (report.get("files"), _part(report, "validation").get("files"))
              if isinstance(part, list) for f in part]
    for f in listed:
        if isinstance(f, dict) and isinstance(f.get("path"), str) and f["path"] and "\0" not in f["path"]:
            known[f["path"]] = f
            known.setdefault(Path(f["path"]).name, f)
    rows = []
    for role, key in (("train", "train_files"), ("validation", "validation_files"), ("documents", "document_files")):
        named = data.get(key)
        for f in named if isinstance(named, list) else []:
            if not isinstance(f, str) or not f or "\0" in f:
                continue
            p = Path(f)
            if p.is_file():
                n = _data_rows(p, known) if role != "documents" else None
                rows.append(f"<tr><td>{_e(role)}</td><td>{_e(p.name)}</td><td class=num>{_e(n if n is not None else '—')}"
                            f"</td><td class=num>{p.stat().st_size:,}</td><td><code>{_e(sha256_file(p))}</code></td></tr>")
            else:
                rows.append(f"<tr><td>{_e(role)}</td><td>{_e(p.name)}</td><td colspan=3 class=na>"
                            f"not found at {_e(f)}</td></tr>")
    summary = ""
    if report:
        summary = (f"<p class=muted>{_e(report.get('train_rows', '?'))} training rows, "
                   f"{_e(report.get('eval_rows', '?'))} validation rows (split {_e(report.get('split', '—'))}); "
                   f"{_e(report.get('truncated', 0))} truncated, {_e(report.get('duplicates', 0))} duplicates dropped.</p>")
    if not rows:
        return "<h2>Data</h2><p class=na>The run names no data files.</p>"
    return ("<h2>Data</h2><table><tr><th>role</th><th>file</th><th>rows</th><th>bytes</th><th>sha256</th></tr>"
            + "".join(rows) + "</table>" + summary)


def _versions() -> list[tuple[str, str]]:
    from importlib import metadata

    out = [("Python", platform.python_version()), ("Platform", platform.platform())]
    for pkg in ("torch", "transformers", "peft", "accelerate", "langchain-core", "chromadb", "numpy"):
        try:
            out.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            pass
    return out


def _environment_section(run: Path) -> str:
    status = runs.read_status(run)
    try:
        prov = read_json(runs.provenance_path(runs.final_dir(run) or runs.adapter_dir(run)), {})
    except (OSError, ValueError):
        prov = {}
    prov = prov if isinstance(prov, dict) else {}
    from backend.events import read_events

    rows: list[tuple[str, Any]] = []
    for k in ("status", "reason", "created", "started", "finished", "updated"):
        v = status.get(k)
        if k != "reason":
            v = _when(v)
        if v not in (None, ""):
            rows.append((f"run {k}", v))
    for r in read_events(runs.metrics_path(run), []):  # a foreign line is left out (docs/architecture.md, "Readers")
        msg = r.get("message") or ""
        if r.get("type") == ev.LOG and msg.startswith("Device:"):
            rows.append(("training device", msg.split(":", 1)[1].strip()))
            break
    for k, v in prov.items():
        if isinstance(v, (str, int, float)) and k not in ("base_model",):
            rows.append((f"adapter {k}", v))
    try:
        from backend.runtime import detect_device

        d = detect_device("auto")
        rows.append(("this machine's device", d.describe()))
    except Exception:  # noqa: BLE001 - the environment table is informative only
        pass
    rows += _versions()
    rows.append(("report written", time.strftime("%Y-%m-%d %H:%M:%S %Z")))
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<h2>Environment</h2><table>{body}</table>"


def svg_lines(series: dict[str, list[tuple[float, float]]], *, width: int = 640, height: int = 240,
              x_label: str = "step", y_label: str = "loss", colours: dict[str, str] | None = None) -> str:
    """A line chart as inline SVG (polylines, axes, ticks and a legend); no external resources.

    Parameters
    ----------
    series
        ``{name: [(x, y), ...]}``; empty series are left out.
    """
    series = {k: [(float(x), float(y)) for x, y in v if y == y] for k, v in series.items()}  # y == y drops NaN
    series = {k: v for k, v in series.items() if v}
    if not series:
        return "<p class=na>No training records.</p>"
    palette = ["#1b7f5b", "#c0392b", "#3a64b0", "#b07d2b"]
    colours = colours or {}
    xs = [x for v in series.values() for x, _ in v]
    ys = [y for v in series.values() for _, y in v]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 52, 12, 12, 34
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_e(y_label)} by {_e(x_label)}">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" stroke="#e6e6e6"/>'
                     f'<text x="{left - 4}" y="{py(yv) + 4:.1f}" font-size="10" text-anchor="end">{yv:.3g}</text>')
        xv = x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{px(xv):.1f}" y="{top + ph + 14}" font-size="10" text-anchor="middle">{xv:.4g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 4}" font-size="11" text-anchor="middle">{_e(x_label)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        c = colours.get(name, palette[i % len(palette)])
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{c}"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{coords}"/>')
        parts.append(f'<rect x="{left + 8 + i * 130}" y="{top + 6}" width="10" height="10" fill="{c}"/>'
                     f'<text x="{left + 22 + i * 130}" y="{top + 15}" font-size="11">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(report: Any, metric: str = "accuracy", *, width: int = 420, height: int = 200) -> str:
    """Grouped bars of one metric per mode, with the interval as a whisker (inline SVG)."""
    vals = [(m, (report.scorecard.get(m) or {}).get(metric) or {}) for m in report.modes]
    vals = [(m, f) for m, f in vals if f.get("value") is not None]
    if not vals:
        return ""
    left, top, bottom = 40, 10, 30
    ph = height - top - bottom
    bw = (width - left - 10) / len(vals)
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{_e(METRIC_LABELS.get(metric, metric))} per mode">']
    for i in range(5):
        y = top + ph * (1 - i / 4)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{i * 25}%</text>')
    for i, (m, f) in enumerate(vals):
        x = left + i * bw + bw * 0.15
        w = bw * 0.7
        h = ph * f["value"]
        parts.append(f'<rect x="{x:.1f}" y="{top + ph - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
                     f'fill="{COLOURS.get(m, "#888")}"><title>{_e(m)}: {f["value"]:.0%}</title></rect>')
        if f.get("low") is not None:
            cx = x + w / 2
            parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top + ph * (1 - f["low"]):.1f}" '
                         f'y2="{top + ph * (1 - f["high"]):.1f}" stroke="#222" stroke-width="1.4"/>')
        parts.append(f'<text x="{x + w / 2:.1f}" y="{height - 12}" font-size="10" text-anchor="middle">'
                     f'{_e(MODE_LABELS.get(m, m))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _curves_section(run: Path) -> str:
    from backend.events import read_events

    recs = read_events(runs.metrics_path(run), [])  # a foreign line is left out (docs/architecture.md, "Readers")
    train = [(r["step"], r["loss"]) for r in recs if r.get("type") == ev.TRAIN
             and isinstance(r.get("loss"), (int, float)) and isinstance(r.get("step"), (int, float))]
    evals = [(r["step"], r["eval_loss"]) for r in recs if r.get("type") == ev.EVAL
             and isinstance(r.get("eval_loss"), (int, float)) and isinstance(r.get("step"), (int, float))]
    lr = [(r["step"], r["learning_rate"]) for r in recs if r.get("type") == ev.TRAIN
          and isinstance(r.get("learning_rate"), (int, float)) and isinstance(r.get("step"), (int, float))]
    out = ["<h2>Training curves</h2>",
           svg_lines({"training loss": train, "validation loss": evals}, y_label="loss")]
    if lr:
        out.append(svg_lines({"learning rate": lr}, height=160, y_label="learning rate"))
    fin = [r for r in recs if r.get("type") == ev.FINISHED]
    if fin:
        f = fin[-1]
        out.append(f"<p class=muted>Finished: {_e(f.get('status'))}"
                   + (f" — {_e(f.get('reason'))}" if f.get("reason") else "") + "</p>")
    return "".join(out)


def _scorecard_table(rep: Any) -> str:
    from backend.rag.evaluate import METRICS

    head = "".join(f"<th>{_e(METRIC_LABELS.get(m, m))}</th>" for m in METRICS)
    rows = []
    for mode in rep.modes:
        card = rep.scorecard.get(mode) or {}
        cells = "".join(f"<td class=num>{_fig(card.get(m), m not in ('f1', 'similarity'))}</td>" for m in METRICS)
        rows.append(f"<tr><th>{_e(MODE_LABELS.get(mode, mode))}</th>{cells}</tr>")
    return f"<table><tr><th>mode</th>{head}</tr>{''.join(rows)}</table>"


def _loss_table(loss: dict[str, Any]) -> str:
    base, tuned = loss.get("base"), loss.get("tuned")
    if not base and not tuned:
        return f"<p class=na>Validation loss: {_e(loss.get('note') or 'not measured')}.</p>"
    rows = []
    for label, v in (("before tuning (base)", base), ("after tuning", tuned)):
        if v:
            ppl = f"{v['perplexity']:.2f}" if v.get("perplexity") is not None else "—"
            rows.append(f"<tr><th>{label}</th><td class=num>{v['eval_loss']:.4f}</td><td class=num>{ppl}</td></tr>")
        else:
            rows.append(f"<tr><th>{label}</th><td class=na>—</td><td class=na>—</td></tr>")
    src = f"<p class=muted>{_e(loss.get('source'))}, {_e(loss.get('rows'))} rows.</p>" if loss.get("source") else ""
    return "<table><tr><th></th><th>validation loss</th><th>perplexity</th></tr>" + "".join(rows) + "</table>" + src


def _quoted_note(r: dict[str, Any]) -> str:
    """Under an answer that grounding replaced: that it is quoted (or withheld), and the model's own words."""
    if r.get("quoted"):
        own = f" The model wrote: “{_e(r.get('withheld'))}”" if r.get("withheld") else ""
        if own and "own_correct" in r:
            own += " (right)" if r["own_correct"] else " (wrong)"
        return f"<div class=quoted>{_e(QUOTED_NOTE)}.{own}</div>"
    if r.get("withheld"):
        return f"<div class=quoted>Withheld: the model wrote “{_e(r['withheld'])}”</div>"
    return ""


def _check_section(run: Path) -> str:
    """The check after training (backend/rag/check.py), when the run made one."""
    rec = runs.read_check(run)
    if rec is None:
        return ""
    if rec.get("status") != "done":
        return f"<h2>Check after training</h2><p class=muted>{_e(rec.get('status'))}: {_e(rec.get('reason'))}</p>"
    cls = "flag" if rec.get("verdict") == "worse" else ""
    out = [f"<h2>Check after training</h2><p class='{cls}'>{_e(rec.get('message'))}</p>"]
    if rec.get("notes"):
        out.append(f"<p class=muted>{_e(rec['notes'])}</p>")
    if rec.get("cause"):
        out.append(f"<p>Likely cause: {_e(rec['cause'])}<br>What to change: {_e(rec.get('advice'))}</p>")
    rows = []
    for q in rec.get("questions") or []:
        cells = []
        for m in ("tuned", "base"):
            r = q.get(m) or {}
            cells.append(f"<td class={'ok' if r.get('correct') else 'bad'}>{_e(r.get('answer'))}"
                         f"{_quoted_note(dict(r, withheld=r.get('own_answer') if r.get('quoted') else ''))}</td>")
        rows.append(f"<tr><td>{_e(q.get('question'))}<div class=src>expected: {_e(q.get('expected'))}</div></td>"
                    + "".join(cells) + "</tr>")
    out.append("<table><tr><th>question</th><th>tuned + documents</th><th>base + documents</th></tr>"
               + "".join(rows) + f"</table><p class=muted>{_e(rec.get('source'))}, {rec.get('seconds', 0):.0f} s.</p>")
    return "".join(out)


def _question_table(rep: Any) -> str:
    head = "".join(f"<th>{_e(MODE_LABELS.get(m, m))}</th>" for m in rep.modes)
    rows = []
    for q in rep.questions:
        cells = []
        for m in rep.modes:
            r = q["modes"].get(m)
            if r is None:
                cells.append("<td class=na>—</td>")
                continue
            cls = "ok" if r.get("correct") else "bad"
            ans = r.get("answer") or ""
            short = ans if len(ans) <= 160 else ans[:160] + " …"
            cells.append(f'<td class={cls} title="{_e(ans)}">{_e(short)}{_quoted_note(r)}</td>')
        ref = q.get("expected") or ("; ".join(q.get("keywords") or []) if q.get("answerable", True)
                                    else "(unanswerable: should abstain)")
        tags = "".join(f"<span class=tag>{_e(t.replace('_', ' '))}</span>" for t in q.get("tags") or [])
        rows.append(f"<tr><td>{_e(q.get('id'))}</td><td>{_e(q.get('question'))}<div class=src>expected: {_e(ref)}"
                    f"</div></td><td>{_e(q.get('kind'))}</td>{''.join(cells)}<td>{tags}</td></tr>")
    return (f"<table><tr><th>id</th><th>question</th><th>kind</th>{head}<th>verdict</th></tr>"
            + "".join(rows) + "</table>")


def _samples(rep: Any, n: int = SAMPLE_ANSWERS) -> str:
    order = {"regressed": 0, "improved": 1, "rag_fixed": 2}
    picked = sorted(rep.questions, key=lambda q: order.get(q.get("verdict"), 9))[:n]
    out = []
    for q in picked:
        cells = []
        for m in rep.modes:
            r = q["modes"].get(m)
            if r is None:
                continue
            srcs = ", ".join(f"{s.get('file')} #{s.get('chunk')}" for s in (r.get("sources") or [])[:3])
            mark = "✓" if r.get("correct") else "✗"
            cells.append(f"<td><b>{_e(MODE_LABELS.get(m, m))}</b> {mark}<br>{_e(r.get('answer'))}{_quoted_note(r)}"
                         + (f"<div class=src>sources: {_e(srcs)}</div>" if srcs else "") + "</td>")
        top = (q.get("retrieved") or [])[:1]
        passage = (f"<div class=src>top passage ({_e(top[0].get('file'))} #{_e(top[0].get('chunk'))}): "
                   f"{_e(top[0].get('text'))}</div>") if top else ""
        out.append(f"<h4>{_e(q.get('id'))}: {_e(q.get('question'))} <span class=tag>{_e(q.get('verdict'))}</span>"
                   f"</h4>{passage}<table class=answers><tr>{''.join(cells)}</tr></table>")
    return "".join(out)


def _evaluation_section(rep: Any) -> str:
    vc = rep.verdict_counts
    verdicts = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in vc.items())
    forget = ""
    if rep.forgetting:
        f = rep.forgetting
        cls = "flag" if f.get("flag") else ""
        forget = (f"<h3>Forgetting check</h3><p class='{cls}'>{_e(f.get('message'))}</p>"
                  f"<p class=muted>base {_fig({'value': f['base']['value'], 'low': f['base']['low'], 'high': f['base']['high']})}"
                  f", tuned {_fig({'value': f['tuned']['value'], 'low': f['tuned']['low'], 'high': f['tuned']['high']})}"
                  "</p>")
    overlap = ""
    if rep.overlap:
        overlap = (f"<p class=flag>{len(rep.overlap)} test question(s) are also training questions: "
                   + _e(", ".join(o["id"] for o in rep.overlap)) + " — their scores measure recall.</p>")
    from backend.rag.settings import describe_settings

    settings = (f"<p class=settings>Answered with {_e(describe_settings(rep.settings))}, greedy decoding.</p>"
                + (f"<details><summary>Answer settings used</summary><pre>"
                   f"{_e(json.dumps(rep.settings, indent=2, sort_keys=True, ensure_ascii=False))}</pre></details>"
                   if rep.settings else ""))
    return (f"<h2>Evaluation: {_e(rep.evalset)}</h2>"
            f"<p class=muted>{len(rep.questions)} questions, {rep.seconds:.0f} s"
            + (", <b>cancelled</b> (partial)" if rep.cancelled else "")
            + f". Each figure: value [95% bootstrap interval]. Verdicts — {_e(verdicts)}.</p>"
            + settings + overlap + _scorecard_table(rep) + svg_bars(rep) + "<h3>Validation loss</h3>" + _loss_table(rep.loss)
            + forget + "<h3>Per question</h3>" + _question_table(rep)
            + "<h3>Sample answers</h3>" + _samples(rep))


def _exports_section(run: Path) -> str:
    d = runs.exports_dir(run)
    found = sorted(d.glob("*/parity.json")) if d.is_dir() else []
    if not found:
        return ""
    out = ["<h2>Exports</h2>"]
    for pj in found:
        try:
            parity = read_json(pj, {}) or {}
        except (OSError, ValueError) as e:
            parity = {"unreadable": str(e)}
        files = []
        for f in sorted(pj.parent.rglob("*")):
            if f.is_file() and f.name != "parity.json":
                files.append(f"<tr><td>{_e(f.relative_to(pj.parent))}</td><td class=num>{f.stat().st_size:,}</td>"
                             f"<td><code>{_e(sha256_file(f))}</code></td></tr>")
        out.append(f"<h3>{_e(pj.parent.name)}</h3><table><tr><th>file</th><th>bytes</th><th>sha256</th></tr>"
                   + "".join(files) + "</table>"
                   f"<details open><summary>parity</summary><pre>{_e(json.dumps(parity, indent=2, ensure_ascii=False))}"
                   "</pre></details>")
    return "".join(out)


# ---------------------------------------------------------------------------


def write_report(run_dir: str | Path, out_path: str | Path | None = None,
                 evalset: str | Sequence[str] | None = None) -> Path:
    """Write the run's report as one self-contained HTML file.

    Parameters
    ----------
    run_dir
        The run folder.
    out_path
        The HTML file (default ``<run>/report.html``).
    evalset
        The evaluation(s) to include by name; default every report in ``<run>/eval``.

    Returns
    -------
    Path
        The file written (atomically).

    Raises
    ------
    RunError
        Not a run folder, or a named evaluation that does not exist.
    """
    from backend.rag.evaluate import list_reports, load_report
    from backend.workspace import require_run_dir

    run = require_run_dir(run_dir)
    try:
        cfg = read_json(runs.config_path(run), {})
    except (OSError, ValueError):
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    names = [evalset] if isinstance(evalset, str) else list(evalset or list_reports(run))
    reports = []
    for n in names:
        rep = load_report(run, n)
        if rep is None:
            known = list_reports(run)
            raise RunError(f"the run has no evaluation named {n!r}", file=run,
                           hint=(f"it has: {', '.join(known)}" if known else
                                 "evaluate it first (`tune eval PROJECT --evalset NAME --run RUN`)"))
        reports.append(rep)
    if out_path is None:
        out = runs.report_path(run)
    else:
        out = Path(out_path).expanduser()
    title = f"Tune Studio report — {run.name}"
    body = [f"<h1>{_e(title)}</h1><p class=muted>{_e(run)}</p>"]
    if reports and reports[0].modes:
        first = reports[0]
        best = first.scorecard.get(first.modes[0], {}).get("accuracy", {}) if first.modes else {}
        body.append(f"<p>Evaluated on <b>{_e(first.evalset)}</b>: {_e(MODE_LABELS.get(first.modes[0], ''))} accuracy "
                    f"{_fig(best)}.</p>")
    else:
        body.append("<p class=na>No evaluation yet: run <code>tune eval</code> or use the Evaluate page.</p>")
    body += [_config_section(cfg), _data_section(run, cfg), _environment_section(run), _curves_section(run),
             _check_section(run)]
    body += [_evaluation_section(r) for r in reports]
    body.append(_exports_section(run))
    doc = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
           f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
           f"<style>{CSS}</style></head><body>{''.join(body)}"
           f"<p class=muted>Written by Tune Studio {_e(_version())} with Python {_e(sys.version.split()[0])}.</p>"
           "</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, doc)
    return out


def _version() -> str:
    from importlib import metadata

    for name in ("tune-studio", "tune_studio"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""


__all__ = ["svg_bars", "svg_lines", "write_report"]
