"""``python -m entropy_verl.tools.reference`` (``make reference``): the settings reference, generated from the registry
and the config dataclasses' field docstrings into ``docs/reference.md``.

    python -m entropy_verl.tools.reference                # write docs/reference.md
    python -m entropy_verl.tools.reference --check        # exit 1 if docs/reference.md is out of date
    python -m entropy_verl.tools.reference clip_b         # print one entry's settings (any registered name)
    python -m entropy_verl.tools.reference gdpo           # a method file: the entries it configures
    python -m entropy_verl.tools.reference task           # a block: task, diagnostics, safety

For every registered entry (loss method, estimator, controller): its kind, config key, the method files that select
it, the paper (its module's docstring), what it does (its function's or class's docstring), the controller outputs it
reads or produces, the inputs it needs beyond verl's, and a table of its settings (type, default, the docstring under
each field). The output depends on the source alone (sorted, no paths of this machine, no dates), so
``tests/tools/test_reference.py`` can compare the file with what this module writes now.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import io
import os
import sys
import tokenize
import types
import typing
from collections.abc import Callable

from omegaconf import OmegaConf

from entropy_verl import registry
from entropy_verl.config import ConfigError, TaskConfig, build_config, field_docs, load_registry, settable_fields
from entropy_verl.schedule import schedulable_fields

COMMAND = "python -m entropy_verl.tools.reference"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "docs", "reference.md")
CONFIG_GROUPS = ("method", "experiment")  # the config groups whose files select registered entries


def blocks() -> dict[str, tuple[str, type]]:
    """The non-method sub-blocks of ``entropy_verl``: {name: (config key, config dataclass)}."""
    from entropy_verl.diagnostics.step import DiagnosticsConfig
    from entropy_verl.trainer.safety import SafetyConfig

    return {
        "task": ("entropy_verl.task", TaskConfig),
        "diagnostics": ("entropy_verl.diagnostics", DiagnosticsConfig),
        "safety": ("entropy_verl.safety", SafetyConfig),
    }


# ---- formatting -----------------------------------------------------------------------------------------------------


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line ('' for none)."""
    return " ".join(inspect.cleandoc(doc or "").split("\n\n")[0].split())


def cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "\\|")


def type_name(annotation) -> str:
    """``float``, ``str | None``, ``'step' | 'micro_batch'``, ``list[str] | None``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    return getattr(annotation, "__name__", str(annotation))


def yaml_value(value) -> str:
    """A default as it is written in a config or on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def default_of(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return yaml_value(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return yaml_value(field.default_factory())
    return "(required)"


def settings_table(cls: type) -> list[str]:
    docs, fields = field_docs(cls), {f.name: f for f in dataclasses.fields(cls)}
    scheduled = schedulable_fields(cls)

    def kind_of(name, kind) -> str:  # a Scheduled setting also takes a schedule (entropy_verl/schedule.py)
        return type_name(kind) + (" | [[step, value], ...]" if name in scheduled else "")

    rows = [
        f"| `{name}` | `{cell(kind_of(name, k))}` | `{cell(default_of(fields[name]))}` | {cell(docs.get(name, ''))} |"
        for name, k in settable_fields(cls).items()
    ]
    if not rows:
        return ["No settings."]
    return ["| setting | type | default | what it is |", "|---|---|---|---|", *rows]


@functools.cache
def need_descriptions() -> dict[str, str]:
    """{need: the comment beside its constant in registry.py}: ``ENTROPY = "entropy"  # the current policy's ...``."""
    descriptions = {}
    lines = inspect.getsource(registry).splitlines(keepends=True)
    tokens = list(tokenize.generate_tokens(io.StringIO("".join(lines)).readline))
    for i, tok in enumerate(tokens[:-1]):
        if tok.type == tokenize.STRING and tokens[i + 1].type == tokenize.COMMENT and tok.start[1] > 0:
            value = tok.string.strip("\"'")
            if value in registry.NEEDS:
                descriptions[value] = tokens[i + 1].string.lstrip("# ").strip()
    return descriptions


# ---- what selects an entry ------------------------------------------------------------------------------------------


def config_dir() -> str:
    from entropy_verl.main import CONFIG_DIR

    return CONFIG_DIR


@functools.cache
def config_files() -> tuple[tuple[str, str, dict], ...]:
    """(group, option, the file's keys unresolved) for every method and experiment file, sorted."""
    files = []
    for group in CONFIG_GROUPS:
        folder = os.path.join(config_dir(), group)
        for name in sorted(f for f in os.listdir(folder) if f.endswith(".yaml")):
            content = OmegaConf.to_container(OmegaConf.load(os.path.join(folder, name)), resolve=False) or {}
            files.append((group, name[: -len(".yaml")], content))
    return tuple(files)


def selected_entries(content: dict) -> list[str]:
    """The registered entries a config file configures, in file order (an estimator also through verl's key)."""
    block = content.get("entropy_verl") or {}
    names = [*(block.get("controllers") or {}), *(block.get("methods") or {})]
    estimator = (content.get("algorithm") or {}).get("adv_estimator")
    if estimator in registry.REGISTRY and estimator not in names:
        names.append(estimator)
    return [n for n in names if n in registry.REGISTRY]


def verl_keys(content: dict, prefix: str = "") -> list[str]:
    """``key=value`` for every key a config file sets outside ``entropy_verl`` and Hydra's ``defaults``."""
    out = []
    for key, value in content.items():
        if not prefix and key in ("entropy_verl", "defaults"):
            continue
        if isinstance(value, dict) and value:
            out.extend(verl_keys(value, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key}={yaml_value(value)}")
    return out


@functools.cache
def selectors() -> dict[str, list[str]]:
    """{entry name: ['method=clip_b', ...]}: the config choices that configure it."""
    found: dict[str, list[str]] = {}
    for group, option, content in config_files():
        for name in selected_entries(content):
            found.setdefault(name, []).append(f"{group}={option}")
    return found


# ---- sections -------------------------------------------------------------------------------------------------------


@functools.cache
def producers() -> dict[str, list[str]]:
    """{controller output: the controllers that produce it}."""
    out: dict[str, list[str]] = {}
    for spec in registry.specs("controller"):
        for output in spec.outputs:
            out.setdefault(output, []).append(spec.name)
    return out


def reads_in_files(spec: registry.Spec) -> dict[str, tuple[str, ...]]:
    """{'method=x': the controller outputs ``spec`` reads with that file's settings} (settings-dependent reads)."""
    out = {}
    for group, option, content in config_files():
        values = ((content.get("entropy_verl") or {}).get(spec.block) or {}).get(spec.name)
        if spec.name in selected_entries(content):
            try:
                out[f"{group}={option}"] = spec.reads_of(build_config(spec.config_cls, values, spec.key))
            except ConfigError:  # a value the file takes from elsewhere (an interpolation)
                continue
    return out


@functools.cache
def readers() -> dict[str, list[str]]:
    """{controller output: the methods that read it, with their defaults or in some config file}."""
    out: dict[str, list[str]] = {}
    for spec in registry.specs(*registry.LOSS_KINDS, "estimator"):
        outputs = set(spec.reads) if not callable(spec.reads) else set().union(*reads_in_files(spec).values())
        for output in sorted(outputs):
            out.setdefault(output, []).append(spec.name)
    return out


def code_list(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def reads_line(spec: registry.Spec) -> str | None:
    made = producers()

    def named(outputs) -> str:
        return ", ".join(f"`{o}` (from {code_list(made.get(o, ['?']))})" for o in outputs) or "none"

    if not callable(spec.reads):
        return named(spec.reads) if spec.reads else None
    try:
        with_defaults = named(spec.reads_of(spec.config_cls()))
    except (TypeError, ValueError):  # a config whose defaults alone are not a valid config
        with_defaults = "(no valid defaults)"
    in_files = "; ".join(f"`{where}`: {named(outputs)}" for where, outputs in reads_in_files(spec).items())
    return f"depends on its settings (`{spec.reads.__name__}`): with the defaults {with_defaults}; {in_files}"


def entry_section(spec: registry.Spec, selected_by: list[str], needs_doc: dict[str, str]) -> list[str]:
    module, read_by = sys.modules[spec.impl.__module__], readers()
    lines = [f"### `{spec.name}`", ""]
    if paper := first_paragraph(module.__doc__):
        lines += [paper, ""]
    if does := first_paragraph(spec.impl.__doc__):
        lines += [does, ""]
    source = spec.impl.__module__.replace(".", "/") + ".py"
    facts = [
        ("kind", spec.kind),
        ("config key", f"`{spec.key}`"),
        ("selected by", code_list(selected_by) or "no config file: set its key"),
        ("implementation", f"`{source}` (`{spec.impl.__qualname__}`)"),
        ("reads controller outputs", reads_line(spec)),
        ("produces", "; ".join(f"`{o}`, read by {code_list(read_by.get(o, [])) or 'nothing'}" for o in spec.outputs)),
        ("needs", "; ".join(f"`{n}` ({needs_doc[n]})" if n in needs_doc else f"`{n}`" for n in spec.needs) or None),
        ("loss_mode", f"`{spec.loss_mode}`" if spec.loss_mode else None),
        ("whole-step statistics (driver)", f"`{spec.step_stats.__name__}`" if spec.step_stats else None),
        ("token selection (driver)", f"`{spec.step_selection.__name__}`" if spec.step_selection else None),
    ]
    lines += [f"- {label}: {value}" for label, value in facts if value]
    return [*lines, "", *settings_table(spec.config_cls), ""]


def block_section(name: str, key: str, cls: type) -> list[str]:
    lines = [f"### `{key}`", ""]
    if (doc := first_paragraph(cls.__doc__)) and not doc.startswith(f"{cls.__name__}("):  # not dataclass's own
        lines += [doc, ""]
    source = cls.__module__.replace(".", "/") + ".py"
    lines += [f"- config key: `{key}`", f"- config class: `{source}` (`{cls.__qualname__}`)", ""]
    return [*lines, *settings_table(cls), ""]


def files_section() -> list[str]:
    lines = [
        "| config file | registered entries it configures | verl keys it sets |",
        "|---|---|---|",
    ]
    for group, option, content in config_files():
        entries = ", ".join(f"[`{n}`](#{n})" for n in selected_entries(content)) or "none"
        keys = "<br>".join(f"`{cell(k)}`" for k in verl_keys(content)) or "none"
        lines.append(f"| `{group}={option}` | {entries} | {keys} |")
    return lines


def header() -> list[str]:
    return [
        "# Settings reference",
        "",
        f"<!-- Generated by `{COMMAND}` (make reference) from the registry and the docstring under each",
        "     config field. Do not edit by hand: change the docstrings and regenerate; tests/tools/test_reference.py",
        "     fails while this file is out of date. -->",
        "",
        "Every setting of every registered method, estimator and controller, and of the other `entropy_verl` blocks,",
        "generated from the registry (`entropy_verl/registry.py`) and the docstring under each config field by",
        f"`{COMMAND}`. One entry on the terminal: `{COMMAND} clip_b` (any name below,",
        "a method file such as `gdpo`, or a block: `task`, `diagnostics`, `safety`).",
        "",
        "A setting is set in a config file or on the command line by its key, e.g.",
        "`python -m entropy_verl.main method=clip_b entropy_verl.methods.clip_b.mu=1.5`; a key nothing reads is an",
        "error naming the closest valid one. Method files carry the papers' values, which are the defaults below.",
        "",
    ]


def generate() -> str:
    """The whole of docs/reference.md."""
    load_registry()
    selected, needs_doc = selectors(), need_descriptions()
    lines = header()
    lines += ["## Registered entries", "", "| entry | kind | config key |", "|---|---|---|"]
    lines += [f"| [`{s.name}`](#{s.name}) | {s.kind} | `{s.key}` |" for s in registry.specs()]
    lines += ["", "## Method and experiment files", "", *files_section(), ""]
    for kind in registry.KINDS:
        lines += [f"## Kind: {kind}", ""]
        for spec in registry.specs(kind):
            lines += entry_section(spec, selected.get(spec.name, []), needs_doc)
    lines += ["## Other blocks of `entropy_verl`", ""]
    for name, (key, cls) in blocks().items():
        lines += block_section(name, key, cls)
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- one name on the terminal -------------------------------------------------------------------------------------


def describe(name: str) -> str:
    """One registered entry's section, a block's, or those of the entries a method/experiment file configures.
    An unknown name raises a KeyError naming the closest known one."""
    load_registry()
    if name in registry.REGISTRY:
        spec = registry.REGISTRY[name]
        return "\n".join(entry_section(spec, selectors().get(name, []), need_descriptions()))
    if name in blocks():
        key, cls = blocks()[name]
        return "\n".join(block_section(name, key, cls))
    files = {option: (group, content) for group, option, content in config_files()}
    if name in files:
        group, content = files[name]
        entries = selected_entries(content)
        lines = [f"`{group}={name}` (trainer_configs/{group}/{name}.yaml)", ""]
        if keys := verl_keys(content):
            lines += ["verl keys it sets:", *(f"  {k}" for k in keys), ""]
        if not entries:
            return "\n".join([*lines, "It configures no registered entry: it sets verl's own keys only."])
        return "\n".join(lines + [describe(entry) for entry in entries])
    known = [*registry.REGISTRY, *blocks(), *files]
    raise KeyError(
        f"unknown entry, block or method file {name!r}{registry.closest(name, known)} "
        f"(registered: {', '.join(sorted(registry.REGISTRY))}; blocks: {', '.join(blocks())})"
    )


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="print this entry's settings (e.g. clip_b) instead of writing the file")
    parser.add_argument("--out", default=DEFAULT_OUT, help="where to write the reference (default: docs/reference.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs from what would be written")
    args = parser.parse_args(argv)
    if args.name:
        try:
            out(describe(args.name))
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return 2
        return 0
    text = generate()
    if args.check:
        current = open(args.out, encoding="utf-8").read() if os.path.exists(args.out) else None
        if current != text:
            print(f"{args.out} is out of date: run `{COMMAND}` (make reference)", file=sys.stderr)
            return 1
        return 0
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"[entropy_verl] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
