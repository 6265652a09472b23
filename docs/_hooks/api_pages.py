"""MkDocs hook: the API reference, one page per public name of `neurodyn` and
`neurodyn.discrete` (`::: neurodyn.NAME`, rendered by mkdocstrings), grouped by the
private module that defines it, and an index page listing them with their summary.

A new public name gets its page and nav entry at the next build; a new private
module gets a section titled from `SECTIONS` (or from its own name)."""

import inspect
import types

from mkdocs.structure.files import File


NAMESPACES = ("neurodyn", "neurodyn.discrete")
# Section title by the first private part of the defining module's path.
SECTIONS = {
    "_models": "Networks",
    "_relax": "Relaxation",
    "_results": "Relaxation",
    "_solvers": "Steady-state solvers",
    "_gradients": "Gradient methods",
    "_dynamics": "Vector fields",
    "_trajectory": "Vector fields",
    "_activations": "Activations",
    "_learning": "Learning",
    "_analysis": "Analysis and stability",
    "_recall": "Content-addressable memory",
    "_sharding": "Devices",
}


def public_names(module: types.ModuleType) -> list[str]:
    """Names a user reaches as `module.NAME` (as tests/test_public_names.py)."""
    return sorted(
        name
        for name in dir(module)
        if not name.startswith("_")
        and not isinstance(getattr(module, name), types.ModuleType)
    )


def _section(namespace: str, obj: object) -> str:
    module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "")
    if namespace != "neurodyn":
        module = module.removeprefix(namespace)
    private = next((p for p in module.split(".") if p.startswith("_")), "_other")
    return SECTIONS.get(private, private.strip("_").replace("_", " ").capitalize())


def _summary(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")


def api_objects() -> dict[str, dict[str, list[tuple[str, str, object]]]]:
    """namespace -> section -> [(name, page path, object)], each sorted."""
    import importlib

    objects = {}
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        names = public_names(module)
        lowered = [n.lower() for n in names]
        sections: dict[str, list] = {}
        for name in names:
            obj = getattr(module, name)
            stem = name
            if lowered.count(name.lower()) > 1:  # Recall/recall: distinct files too
                stem += "-class" if inspect.isclass(obj) else "-function"
            folder = "api/" + namespace.replace(".", "/")
            page = (name, f"{folder}/{stem}.md", obj)
            sections.setdefault(_section(namespace, obj), []).append(page)
        objects[namespace] = dict(sorted(sections.items()))
    return objects


def on_config(config):
    """Fill the nav's `API reference` entry with a section per defining module."""
    objects = api_objects()
    entries = ["api/index.md"]
    for namespace, sections in objects.items():
        entries.append(
            {
                namespace: [
                    {title: [{name: page} for name, page, _ in pages]}
                    for title, pages in sections.items()
                ]
            }
        )
    for i, item in enumerate(config["nav"]):
        if isinstance(item, dict) and "API reference" in item:
            config["nav"][i] = {"API reference": entries}
    return config


def on_files(files, config):
    """Add the generated pages: the index and one page per public name."""
    lines = [
        "# API reference",
        "",
        "Every public name of `neurodyn` (imported as `nd`) and `neurodyn.discrete`",
        "(`ndd`), generated from the docstrings. Each page gives the signature with",
        "its types and the equation the object implements.",
    ]
    for namespace, sections in api_objects().items():
        lines += ["", f"## `{namespace}`"]
        for title, pages in sections.items():
            lines += ["", f"### {title}", "", "| Name | Summary |", "| --- | --- |"]
            for name, page, obj in pages:
                link = page.removeprefix("api/")
                lines.append(f"| [`{name}`]({link}) | {_summary(obj)} |")
            for name, page, _ in pages:
                text = f"::: {namespace}.{name}\n"  # its heading is the page's title
                files.append(File.generated(config, page, content=text))
    files.append(File.generated(config, "api/index.md", content="\n".join(lines)))
    return files
