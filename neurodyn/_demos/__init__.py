"""The paper experiments of the top-level `demos/` folder, found by name.

A demo is a file `demos/NAME.py` (with `_` for each `-` of NAME; files starting with
`_` are not demos) whose docstring's first sentence describes it and which defines
`run(out, *, small=False) -> metrics`, filling the run folder `out`. There is one
copy of each: in a source checkout (an editable install) this package's path is
extended to the checkout's `demos/` folder; a wheel carries the files inside this
package (pyproject.toml's `force-include`). Either way a demo imports as
`neurodyn._demos.NAME`, and one demo may import another that way.
"""

import ast
import importlib
import pathlib
from collections.abc import Callable
from typing import Any


_HERE = pathlib.Path(__file__).parent
_CHECKOUT_DEMOS = _HERE.parents[1] / "demos"
if not any(p.name != "__init__.py" for p in _HERE.glob("*.py")):
    __path__.append(str(_CHECKOUT_DEMOS))


def demo_files() -> dict[str, pathlib.Path]:
    """Every demo's name and file, sorted by name."""
    files = {
        path.stem.replace("_", "-"): path
        for folder in __path__
        for path in pathlib.Path(folder).glob("*.py")
        if not path.name.startswith("_")
    }
    if not files:
        raise ValueError(
            f"No demos found in {', '.join(__path__)}; reinstall neurodyn "
            "(`pip install .` from a checkout) or run from a checkout with demos/."
        )
    return dict(sorted(files.items()))


def summary(path: pathlib.Path) -> str:
    """The first sentence of a demo's docstring, without its `Demo NAME:` prefix,
    read without importing the demo."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split()).split(": ", 1)[-1].split(". ")[0]


def load(name: str) -> Callable[..., dict[str, Any]]:
    """The `run` function of the demo `name`."""
    files = demo_files()
    if name not in files:
        raise ValueError(
            f"Unknown demo {name!r}; `neurodyn demo --list` lists: {', '.join(files)}."
        )
    return importlib.import_module(f"{__name__}.{files[name].stem}").run
