"""Typed, validated params.

`params.yaml` holds one section per DVC stage plus three globals:

    profile: smoke            # smoke | cpu | small | paper
    seed: 0
    profiles:                 # per-profile overrides, merged over each section
      small: {pretrain: {max_steps: 20000}}

A stage asks for its section with :func:`stage_params`; the profile's overrides are
deep-merged over the base section and the result is validated by the pydantic model
registered for that section (:func:`section`). Any unknown key, wrong type or
out-of-range value raises :class:`ParamsError` naming the file, the key path, the
value and what is allowed -- before the stage does any work.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

PROFILES = ("smoke", "cpu", "small", "paper")
DEFAULT_PARAMS = "params.yaml"

_SECTIONS: dict[str, type[BaseModel]] = {}
M = TypeVar("M", bound=type[BaseModel])


class ParamsError(ValueError):
    """A params file is wrong; the message names the file, the key and the value."""


class Section(BaseModel):
    """Base for every params section: unknown keys are errors, assignments are checked.

    `matrix_keys` names the lists that dvc.yaml expands into stages (foreach/matrix).
    DVC reads them from the base section only, so a profile may not override them.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
    matrix_keys: ClassVar[tuple[str, ...]] = ()


def section(name: str):
    """Class decorator: register `cls` as the schema of params section `name`."""

    def deco(cls: M) -> M:
        if name in _SECTIONS and _SECTIONS[name] is not cls:
            raise RuntimeError(f"params section {name!r} registered twice")
        _SECTIONS[name] = cls
        return cls

    return deco


def registered_sections() -> dict[str, type[BaseModel]]:
    _import_schemas()
    return dict(_SECTIONS)


def _schema(name: str) -> type[BaseModel] | None:
    # A stage script imports its own module (which registers its section) before asking
    # for params: importing every owner module here would cost seconds of torch/datasets
    # imports in stages that need neither.
    if name not in _SECTIONS:
        _import_schemas()
    return _SECTIONS.get(name)


def _import_schemas() -> None:
    # Each library module registers its own section when imported; this list is
    # the one place that knows which modules own sections.
    import importlib

    for mod in (
        "arkbench.data.download",
        "arkbench.training.pretrain",
        "arkbench.training.finetune",
        "arkbench.report.build",
        "arkbench.papers.oversmoothing.stages",
        "arkbench.papers.captioning.stages",
        "arkbench.papers.autobert_zero.stages",
        "arkbench.papers.zerogen.stages",
    ):
        importlib.import_module(mod)


class Globals(Section):
    profile: Literal["smoke", "cpu", "small", "paper"] = "smoke"
    seed: int = 0


def params_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("ARKBENCH_PARAMS", DEFAULT_PARAMS))


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml: ~10x faster on params.yaml
_READ_CACHE: dict[tuple, dict] = {}


def read_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The parsed params file (a fresh copy; parsed once per file version per process)."""
    p = params_path(path)
    if not p.exists():
        raise ParamsError(f"{p}: params file not found (run from the repository root)")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _READ_CACHE:
        try:
            data = yaml.load(p.read_text(), Loader=_LOADER) or {}
        except yaml.YAMLError as e:
            raise ParamsError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ParamsError(f"{p}: top level must be a mapping, got {type(data).__name__}")
        _READ_CACHE.clear()
        _READ_CACHE[key] = data
    return copy.deepcopy(_READ_CACHE[key])


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _format_error(file: Path, prefix: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in (prefix, *e["loc"]))
        value = e.get("input")
        if e["type"] == "extra_forbidden":
            lines.append(f"{file}: unknown key {loc!r} (value {value!r})")
            continue
        lines.append(f"{file}: {loc} = {value!r}: {e['msg']}")
    return "\n".join(lines)


def validate_section(name: str, values: dict, file: Path | str = DEFAULT_PARAMS,
                     note: str = "") -> BaseModel:
    schema = _schema(name)
    if schema is None:
        raise ParamsError(f"{file}: no schema registered for section {name!r}; "
                          f"known: {sorted(registered_sections())}")
    try:
        return schema.model_validate(values)
    except ValidationError as e:
        msg = _format_error(Path(file), name, e)
        allowed = sorted(schema.model_fields)
        if "unknown key" in msg:
            msg += f"\n  allowed keys in {name}: {', '.join(allowed)}"
        if note:
            msg += f"\n  ({note})"
        raise ParamsError(msg) from None


def globals_(raw: dict, file: Path | str = DEFAULT_PARAMS) -> Globals:
    vals = {k: raw[k] for k in Globals.model_fields if k in raw}
    try:
        return Globals.model_validate(vals)
    except ValidationError as e:
        raise ParamsError(_format_error(Path(file), "", e).replace(": .", ": ")) from None


def stage_params(name: str, path: str | os.PathLike | None = None):
    """Validated params for section `name`, with the active profile's overrides merged."""
    file = params_path(path)
    raw = read_params(file)
    g = globals_(raw, file)
    if name not in raw:
        raise ParamsError(f"{file}: missing section {name!r}")
    base = raw[name] or {}
    if not isinstance(base, dict):
        raise ParamsError(f"{file}: section {name!r} must be a mapping")
    profiles = raw.get("profiles") or {}
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise ParamsError(f"{file}: unknown profile(s) {sorted(unknown)} under 'profiles'; "
                          f"allowed: {', '.join(PROFILES)}")
    over = (profiles.get(g.profile) or {}).get(name) or {}
    note = f"profile {g.profile!r}: {name} merged with profiles.{g.profile}.{name}" if over else ""
    return validate_section(name, deep_merge(base, over), file, note=note)


def check_all(path: str | os.PathLike | None = None) -> list[str]:
    """Validate every section and every profile override; return the problems found."""
    file = params_path(path)
    raw = read_params(file)
    problems: list[str] = []
    try:
        globals_(raw, file)
    except ParamsError as e:
        problems.append(str(e))
    sections = registered_sections()
    for key in raw:
        if key in Globals.model_fields or key in ("profiles", "vars"):
            continue
        if key not in sections:
            problems.append(f"{file}: unknown section {key!r}; known: {', '.join(sorted(sections))}")
    profiles = raw.get("profiles") or {}
    for prof in PROFILES:
        for name in sections:
            if name not in raw:
                continue
            over = ((raw.get("profiles") or {}).get(prof) or {}).get(name) or {}
            for key in sorted(set(over) & set(getattr(sections[name], "matrix_keys", ()))):
                problems.append(f"{file}: profiles.{prof}.{name}.{key} overrides a list that dvc.yaml expands "
                                f"into stages; DVC reads it from `{name}.{key}` only, so set it there")
            try:
                validate_section(name, deep_merge(raw[name] or {}, over), file,
                                 note=f"profile {prof!r}: {name} merged with profiles.{prof}.{name}")
            except ParamsError as e:
                problems.append(str(e))
    return problems
