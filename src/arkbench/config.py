"""Typed, validated params.

`params.yaml` holds one section per DVC stage plus three globals:

    profile: smoke                     # the active profile, one of `profiles`
    seed: 0
    profiles: [smoke, cpu, small, paper]   # every profile name (any number of them)

    pretrain:                          # a section: its base (smoke) values...
      max_steps: 300
      profiles:                        # ...and, beside them, what other profiles change
        small: {max_steps: 20000}      # (only profiles that change something are listed)

A stage asks for its section with :func:`stage_params`; the active profile's overrides
(``<section>.profiles.<profile>``) are deep-merged over the base section and the result
is validated by the pydantic model registered for that section (:func:`section`). Any
unknown key, wrong type or out-of-range value raises :class:`ParamsError` naming the
file, the key path, the value and what is allowed -- before the stage does any work.
:func:`check_all` validates every section under every profile.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

PROFILES = ("smoke", "cpu", "small", "paper")   # when params.yaml declares no `profiles` list
DEFAULT_PARAMS = "params.yaml"
OVERRIDES = "profiles"                   # the key, inside a section, holding its profile overrides

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


# Modules owning the core (non-paper) sections; a paper's sections come from its manifest.
CORE_SECTION_MODULES = (
    "arkbench.data.download",
    "arkbench.training.pretrain",
    "arkbench.training.finetune",
    "arkbench.report.build",
)


def _schema(name: str) -> type[BaseModel] | None:
    # A stage script imports its own module (which registers its section) before asking
    # for params: importing every owner module here would cost seconds of torch/datasets
    # imports in stages that need neither. A paper section imports only its owner module.
    if name not in _SECTIONS:
        import importlib

        from .papers import section_owners

        owner = section_owners().get(name)
        if owner is not None:
            importlib.import_module(owner)
    if name not in _SECTIONS:
        _import_schemas()
    return _SECTIONS.get(name)


def _import_schemas() -> None:
    # Each module registers its own section when imported: the core ones above, and the
    # modules every paper's manifest names (arkbench.papers discovery).
    import importlib

    from .papers import section_owners

    for mod in (*CORE_SECTION_MODULES, *sorted(set(section_owners().values()))):
        importlib.import_module(mod)


class Globals(Section):
    profile: str = "smoke"
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


def profile_names(raw: dict, file: Path | str = DEFAULT_PARAMS) -> tuple[str, ...]:
    """The declared profiles: the top-level `profiles` list (default :data:`PROFILES`)."""
    names = raw.get("profiles")
    if names is None:
        return PROFILES
    if isinstance(names, dict):
        first = next(iter(names), "small")
        sec = next(iter((names.get(first) or {})), "<section>")
        raise ParamsError(f"{file}: 'profiles' is a mapping of overrides (the old layout); overrides now "
                          f"live beside their section ({sec}: {{{OVERRIDES}: {{{first}: ...}}}}) and the "
                          f"top-level 'profiles' lists the profile names, e.g. profiles: [smoke, small, paper]")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ParamsError(f"{file}: profiles = {names!r}: a list of profile names, e.g. [smoke, small, paper]")
    return tuple(names)


def globals_(raw: dict, file: Path | str = DEFAULT_PARAMS) -> Globals:
    vals = {k: raw[k] for k in Globals.model_fields if k in raw}
    try:
        g = Globals.model_validate(vals)
    except ValidationError as e:
        raise ParamsError(_format_error(Path(file), "", e).replace(": .", ": ")) from None
    names = profile_names(raw, file)
    if g.profile not in names:
        raise ParamsError(f"{file}: profile = {g.profile!r}: not a declared profile; allowed: {', '.join(names)}")
    return g


def split_section(raw: dict, name: str, file: Path | str = DEFAULT_PARAMS) -> tuple[dict, dict[str, dict]]:
    """(base values, {profile: overrides}) of section `name`; unknown profile names are errors."""
    if name not in raw:
        raise ParamsError(f"{file}: missing section {name!r}")
    sec = raw[name] or {}
    if not isinstance(sec, dict):
        raise ParamsError(f"{file}: section {name!r} must be a mapping")
    over = sec.get(OVERRIDES) or {}
    if not isinstance(over, dict):
        raise ParamsError(f"{file}: {name}.{OVERRIDES} = {over!r}: a mapping profile -> overrides")
    names = profile_names(raw, file)
    for prof, values in over.items():
        if prof not in names:
            raise ParamsError(f"{file}: {name}.{OVERRIDES}.{prof}: unknown profile; declared: {', '.join(names)}")
        if not isinstance(values, dict):
            raise ParamsError(f"{file}: {name}.{OVERRIDES}.{prof} = {values!r}: a mapping of {name}'s keys")
    return {k: v for k, v in sec.items() if k != OVERRIDES}, {k: v or {} for k, v in over.items()}


def effective_section(raw: dict, name: str, profile: str, file: Path | str = DEFAULT_PARAMS) -> dict:
    """Section `name` with `profile`'s overrides deep-merged (not validated)."""
    base, over = split_section(raw, name, file)
    return deep_merge(base, over.get(profile) or {})


def stage_params(name: str, path: str | os.PathLike | None = None):
    """Validated params for section `name`, with the active profile's overrides merged."""
    file = params_path(path)
    raw = read_params(file)
    g = globals_(raw, file)
    base, over = split_section(raw, name, file)
    mine = over.get(g.profile) or {}
    note = f"profile {g.profile!r}: {name} merged with {name}.{OVERRIDES}.{g.profile}" if mine else ""
    return validate_section(name, deep_merge(base, mine), file, note=note)


def check_all(path: str | os.PathLike | None = None) -> list[str]:
    """Validate every section under every declared profile; return the problems found."""
    file = params_path(path)
    raw = read_params(file)
    problems: list[str] = []
    try:
        globals_(raw, file)
        names = profile_names(raw, file)
    except ParamsError as e:
        problems.append(str(e))
        names = PROFILES if not isinstance(raw.get("profiles"), list) else tuple(raw["profiles"])
        if isinstance(raw.get("profiles"), dict):
            return problems
    sections = registered_sections()
    for key in raw:
        if key in Globals.model_fields or key in ("profiles", "vars"):
            continue
        if key not in sections:
            problems.append(f"{file}: unknown section {key!r}; known: {', '.join(sorted(sections))}")
    from .papers import papers

    for p in papers().values():   # a manifest must name sections its modules really register
        for sec, mod in p.sections.items():
            if sec not in sections:
                problems.append(f"paper {p.name!r}: manifest names section {sec!r}, which {mod} does not register")
    for name in sections:
        if name not in raw:
            continue
        try:
            base, over = split_section(raw, name, file)
        except ParamsError as e:
            problems.append(str(e))
            continue
        for prof in names:
            mine = over.get(prof) or {}
            for key in sorted(set(mine) & set(getattr(sections[name], "matrix_keys", ()))):
                problems.append(f"{file}: {name}.{OVERRIDES}.{prof}.{key} overrides a list that dvc.yaml expands "
                                f"into stages; DVC reads it from `{name}.{key}` only, so set it there")
            try:
                validate_section(name, deep_merge(base, mine), file,
                                 note=f"profile {prof!r}: {name} merged with {name}.{OVERRIDES}.{prof}" if mine else "")
            except ParamsError as e:
                problems.append(str(e))
    return problems
