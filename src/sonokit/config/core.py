"""YAML configs mapped onto typed dataclasses; unknown keys are errors with a "did you mean" hint.

Overrides use dotted keys: ``--set optim.lr=3e-4 --set data.root=/data/busi`` (values are parsed as YAML,
so ``[1, 2]``, ``null`` and ``true`` work). Two kinds of section:

* a dataclass section (``data``, ``optim``, ...): every key is a field, checked by type;
* a *spec* (:class:`Spec`: ``model``, ``method``, each term of ``loss``): ``{name: ..., **kwargs}`` whose
  keys are the keyword arguments of a registered factory. The config layer only checks its shape; the
  keys are checked against the factory's signature by :meth:`sonokit.registry.Registry.check_kwargs` when
  the run starts, so generic code never needs to know which keys a particular model takes. A spec given
  without ``name`` (or with the default's name) is merged over the default spec.

This module imports no torch: configs load in the time it takes to read the YAML.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..registry import did_you_mean


class Spec(dict):
    """A registry spec ``{name: ..., **kwargs}`` (a plain dict subclass used as a type marker)."""


def spec(name: str, **kwargs) -> Spec:
    return Spec(name=name, **kwargs)


def _spec_value(value, where: str, default: dict | None = None) -> Spec:
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping with a name, e.g. {{name: ...}}; found {value!r}")
    if default is not None and value.get("name", default.get("name")) == default.get("name"):
        value = {**default, **value}
    if not isinstance(value.get("name"), str) or not value["name"]:
        raise ConfigError(f"{where} needs a 'name' (a registered name), found {value!r}")
    return Spec(value)


def _check_type(value, tp, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Spec:
        return _spec_value(value, where)
    if value is None:
        if type(None) in args or tp is type(None):
            return None
        raise ConfigError(f"{where} may not be null")
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_type(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, found {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, found {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, found {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, found {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, found {value!r}")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, found {value!r}")
        return str(value)
    return value


def _default(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def from_dict(cls, data: dict, where: str = "", base=None):
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys and wrong types.

    Keys not given keep the defaults of ``base`` (the enclosing field's default, so a section's preset
    defaults, e.g. ``PretrainConfig.data.image_size = 96``, survive a partial section in the YAML).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{path}'{did_you_mean(str(key), fields)} "
                              f"allowed here: {', '.join(fields)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value or {}, path, _default(fields[key]))
        elif tp is Spec:
            kwargs[key] = _spec_value(value, path, _default(fields[key]))
        else:
            kwargs[key] = _check_type(value, tp, path)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _parse_override(ov: str) -> tuple[str, object]:
    if "=" not in ov:
        raise ConfigError(f"override '{ov}' must look like key.subkey=value (or STAGE:key.subkey=value)")
    key, raw = ov.split("=", 1)
    try:
        return key, (yaml.safe_load(raw) if raw != "" else None)
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{ov}': the value is not valid YAML ({str(e).splitlines()[0]})") from None


def _set_dotted(data: dict, key: str, value) -> None:
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{key}': '{p}' is not a section")
    node[parts[-1]] = value


def _stage_sets(data: dict) -> list[tuple[str, dict]]:
    """``(name, set)`` of each stage of a raw config dict (``set`` created when absent)."""
    stages = data.get("stages") or []
    if not isinstance(stages, list):
        return []
    out = []
    for st in stages:
        if isinstance(st, dict):
            if not isinstance(st.get("set"), dict):
                st["set"] = dict(st.get("set") or {})
            out.append((str(st.get("name", "stage")), st["set"]))
    return out


def apply_overrides(data: dict, overrides: list[str] | dict | None) -> dict:
    """Apply dotted overrides (``["optim.lr=3e-4", ...]`` or ``{"optim.lr": 3e-4}``) to a raw config dict.

    With ``stages:``, an override of a key that a stage's ``set`` also holds replaces the stage's value too
    (the command line wins in every stage), and ``STAGE:key=value`` overrides ``key`` in the stage named
    STAGE only (e.g. ``corrector:optim.epochs=5``).
    """
    items = list(overrides.items()) if isinstance(overrides, dict) else [_parse_override(ov) for ov in overrides or []]
    for key, value in items:
        key = str(key).strip()
        stage, colon, sub = key.partition(":")
        if colon:
            sets = dict(_stage_sets(data))
            if stage not in sets:
                raise ConfigError(f"override '{key}': the config has no stage '{stage}' "
                                  f"(its stages: {', '.join(sets) or 'none'}); use STAGE:key=value")
            if not sub:
                raise ConfigError(f"override '{key}': name a key after the stage, e.g. {stage}:optim.epochs=5")
            sets[stage][sub] = value
            continue
        _set_dotted(data, key, value)
        if key != "stages":
            for _, sset in _stage_sets(data):
                if key in sset:
                    sset[key] = value
    return data


def read_yaml(path: str | Path) -> dict:
    """The mapping in YAML file ``path``, with clear errors for a missing file or bad YAML."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{p}' is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{p}' must hold a mapping at the top level")
    return data


def check_ranges(cfg, ranges: dict) -> None:
    """Raise ConfigError for a numeric key of ``cfg`` outside its range (``ranges``: dotted key -> (min, max,
    min excluded)); keys the config does not have are skipped."""
    for key, (lo, hi, lo_open) in ranges.items():
        node = cfg
        for part in key.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        if node is None or isinstance(node, bool) or not isinstance(node, (int, float)):
            continue
        if (lo is not None and (node < lo or (lo_open and node == lo))) or (hi is not None and node > hi):
            want = (f"{'>' if lo_open else '>='} {lo}" if lo is not None else "") + (
                f"{' and ' if lo is not None else ''}<= {hi}" if hi is not None else "")
            raise ConfigError(f"{key} must be {want}, found {node}")


def build(cls, data: dict, overrides=None, *, source: str = "config"):
    """``cls`` from a raw dict plus overrides, ranges checked; errors are prefixed with ``source``."""
    from .schema import RANGES

    data = apply_overrides(dict(data), overrides)
    try:
        cfg = from_dict(cls, data)
        check_ranges(cfg, RANGES)
        return cfg
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def to_dict(cfg) -> dict:
    """Plain nested dicts and lists (specs become plain dicts), ready for YAML or JSON."""
    return _plain(dataclasses.asdict(cfg))


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def dump_yaml(cfg) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
