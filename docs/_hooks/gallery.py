"""MkDocs hook: the gallery, one page per demo of `demos/` with the figures and the
metrics of a small run (`neurodyn demo NAME --small`) and the script itself.

The figures come from the current code: each demo runs into `.cache/gallery/NAME`,
and a run is reused only while the fingerprint of the code that made it (the syntax
of every `.py` file of `neurodyn/` and `demos/`, and the JAX version) is unchanged.
The environment variable `NEURODYN_GALLERY` chooses what runs: `all` (the default:
every demo whose run is missing or stale), `none` (no demo runs; the pages show the
scripts without figures, as in the quick strict build of tests/test_docs.py) or a
comma-separated list of demo names.

The same holds for the worked examples of `docs/examples/`: a page that contains the
line `<!-- source: examples/NAME.py -->` shows the code there, and one with the
line `<!-- run: examples/NAME.py -->` shows there what `python NAME.py` printed and
the figures it saved, from a run in `.cache/gallery/examples/NAME` (unless
`NEURODYN_GALLERY=none`).

A script may be written in cells: `# %% [markdown]` starts a block of `# ` comment
lines rendered as Markdown, `# %%` starts a code cell (at any indentation, so cells
may split the body of `run`)."""

import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

from mkdocs.structure.files import File


log = logging.getLogger("mkdocs.hooks.gallery")
ROOT = pathlib.Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "gallery"


def _demo_files() -> dict[str, pathlib.Path]:
    from neurodyn._demos import demo_files

    return demo_files()


def code_fingerprint() -> str:
    """sha256 of the code that makes a run: the syntax trees of every `.py` file of
    neurodyn/ and demos/ (so comments, such as a demo's Markdown cells, and
    formatting do not count) and JAX's version."""
    import ast

    import jax

    digest = hashlib.sha256(jax.__version__.encode())
    for path in sorted([*ROOT.glob("neurodyn/**/*.py"), *ROOT.glob("demos/*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(ast.dump(ast.parse(path.read_bytes())).encode())
    return digest.hexdigest()


def _chosen(names: list[str]) -> set[str]:
    choice = os.environ.get("NEURODYN_GALLERY", "all").strip()
    if choice == "all":
        return set(names)
    if choice == "none":
        return set()
    chosen = {n.strip() for n in choice.split(",") if n.strip()}
    if unknown := chosen - set(names):
        raise ValueError(
            f"NEURODYN_GALLERY names unknown demos {sorted(unknown)}; the demos are "
            f"{', '.join(names)} (or use `all` or `none`)."
        )
    return chosen


def current_run(name: str, fingerprint: str) -> pathlib.Path:
    """The run folder of `neurodyn demo NAME --small` made by the current code:
    reused when its fingerprint matches, otherwise run again."""
    out, stamp = CACHE / name, CACHE / f"{name}.fingerprint"
    if (out / "metrics.json").exists() and stamp.exists():
        if stamp.read_text() == fingerprint:
            return out
    log.info("gallery: running `neurodyn demo %s --small` (code changed)", name)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "neurodyn.cli", "demo", name, "--small"]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"The gallery's run of `neurodyn demo {name} --small` failed:\n"
            f"{done.stderr[-3000:]}\nFix the demo, or build without running demos "
            "(NEURODYN_GALLERY=none)."
        )
    (out / "gallery.json").write_text(
        json.dumps({"seconds": round(time.perf_counter() - start, 1)})
    )
    stamp.write_text(fingerprint)
    return out


def example_run(path: pathlib.Path, fingerprint: str) -> pathlib.Path:
    """A folder with `output.txt` (what `python path` printed) and the figures it
    saved, run again whenever the code or the example changed."""
    out = CACHE / "examples" / path.stem
    stamp = out / "fingerprint"
    fingerprint += hashlib.sha256(path.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == fingerprint:
        return out
    log.info("gallery: running docs/examples/%s", path.name)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, cwd=out
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"docs/examples/{path.name} failed:\n{done.stderr[-3000:]}\nFix the "
            "example, or build without running it (NEURODYN_GALLERY=none)."
        )
    (out / "output.txt").write_text(done.stdout)
    stamp.write_text(fingerprint)
    return out


def _flatten(metrics: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if len(value) > 8 or any(isinstance(v, list | dict) for v in value):
            return f"({len(value)} values)"
        return ", ".join(_format(v) for v in value)
    return str(value).replace("|", "\\|")


def metrics_table(metrics: dict) -> list[str]:
    lines = ["| Metric | Value |", "| --- | --- |"]
    return lines + [f"| `{k}` | {_format(v)} |" for k, v in _flatten(metrics)]


def script_cells(source: str) -> list[str]:
    """The script as Markdown: its `# %% [markdown]` cells as text, the rest as
    Python blocks, without the module docstring (shown above it)."""
    import ast

    tree = ast.parse(source)
    lines = source.splitlines()
    if ast.get_docstring(tree) is not None:
        lines = lines[tree.body[0].end_lineno :]
    blocks: list[tuple[str, list[str]]] = [("code", [])]
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# %% [markdown]"):
            blocks.append(("markdown", []))
        elif stripped.startswith("# %%"):
            blocks.append(("code", []))
        elif blocks[-1][0] == "markdown":  # cells may sit inside `run`, indented
            blocks[-1][1].append(stripped.removeprefix("#").removeprefix(" "))
        else:
            blocks[-1][1].append(line)
    out = []
    for kind, body in blocks:
        text = "\n".join(body).strip("\n")
        if not text:
            continue
        out += [text, ""] if kind == "markdown" else ["```python", text, "```", ""]
    return out


def demo_page(name: str, path: pathlib.Path, run: pathlib.Path | None) -> list[str]:
    import ast

    source = path.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    lines = [f"# `{name}`", "", doc, ""]
    lines += [
        "```bash",
        f"python demos/{path.name} --out runs/{name}   # or: neurodyn demo {name}",
        "```",
        "",
    ]
    if run is None:
        lines += [
            '!!! note "Built without running the demo"',
            "    This build skipped the demos (`NEURODYN_GALLERY=none`); `make docs`",
            "    shows the figures and metrics of a small run.",
            "",
        ]
    else:
        seconds = json.loads((run / "gallery.json").read_text())["seconds"]
        lines += [
            "## Figures",
            "",
            f"From `neurodyn demo {name} --small`, run by this build's code "
            f"({seconds:.0f} s).",
            "",
        ]
        for png in sorted(run.glob("*.png")):
            lines += [f"![{png.stem}]({name}/{png.name})", ""]
        metrics = json.loads((run / "metrics.json").read_text())
        lines += ["## Metrics", "", *metrics_table(metrics), ""]
    lines += ["## The script", "", *script_cells(source)]
    return lines


def on_config(config):
    """Fill the nav's `Gallery` entry with a page per demo."""
    pages = ["gallery/index.md"] + [{n: f"gallery/{n}.md"} for n in _demo_files()]
    for i, item in enumerate(config["nav"]):
        if isinstance(item, dict) and "Gallery" in item:
            config["nav"][i] = {"Gallery": pages}
    return config


def on_files(files, config):
    """Run the chosen demos that are stale and add the gallery pages and figures."""
    from neurodyn._demos import summary

    demos = _demo_files()
    chosen = _chosen(list(demos))
    fingerprint = code_fingerprint() if chosen else ""
    index = [
        "# Gallery",
        "",
        "Every experiment of `demos/`, run small by this build of the documentation",
        "(figures and metrics from the current code), followed by the script itself.",
        "",
    ]
    for name, path in demos.items():
        run = current_run(name, fingerprint) if name in chosen else None
        page = demo_page(name, path, run)
        files.append(
            File.generated(config, f"gallery/{name}.md", content="\n".join(page))
        )
        index += [f"## [`{name}`]({name}.md)", "", summary(path).rstrip(".") + ".", ""]
        for png in sorted(run.glob("*.png")) if run else []:
            files.append(
                File.generated(config, f"gallery/{name}/{png.name}", abs_src_path=png)
            )
        if run and (first := next(iter(sorted(run.glob("*.png"))), None)):
            index += [f"[![{name}]({name}/{first.name}){{ width=480 }}]({name}.md)", ""]
    files.append(File.generated(config, "gallery/index.md", content="\n".join(index)))
    _EXAMPLE_RUNS.clear()
    if os.environ.get("NEURODYN_GALLERY", "all").strip() != "none":
        fingerprint = fingerprint or code_fingerprint()
        for path in sorted((ROOT / "docs" / "examples").glob("*.py")):
            run = _EXAMPLE_RUNS[path.name] = example_run(path, fingerprint)
            for png in sorted(run.glob("*.png")):
                uri = f"examples/{png.name}"
                files.append(File.generated(config, uri, abs_src_path=png))
    return files


_EXAMPLE_RUNS: dict[str, pathlib.Path] = {}
_RUN_MARKER = re.compile(r"^<!-- run: examples/(\S+\.py) -->$", re.MULTILINE)


def _example_output(match: re.Match) -> str:
    run = _EXAMPLE_RUNS.get(match.group(1))
    if run is None:
        return (
            '!!! note "Built without running the example"\n'
            "    This build skipped it (`NEURODYN_GALLERY=none`); `make docs` shows "
            "what it prints and draws."
        )
    text = (run / "output.txt").read_text().rstrip()
    figures = [f"![{p.stem}](examples/{p.name})" for p in sorted(run.glob("*.png"))]
    return "\n\n".join(
        ["Output (run by this build):", f"```text\n{text}\n```", *figures]
    )


_SOURCE_MARKER = re.compile(r"^<!-- source: examples/(\S+\.py) -->$", re.MULTILINE)


def _example_source(match: re.Match) -> str:
    text = (ROOT / "docs" / "examples" / match.group(1)).read_text().rstrip()
    return f"```python\n{text}\n```"


def on_page_markdown(markdown, page, config, files):
    """Put each example's code where its page says `<!-- source: examples/NAME.py -->`
    and its output where it says `<!-- run: examples/NAME.py -->`."""
    markdown = _SOURCE_MARKER.sub(_example_source, markdown)
    return _RUN_MARKER.sub(_example_output, markdown)
