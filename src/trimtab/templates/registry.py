"""The template registry: every module of this package that defines ``TEMPLATE`` (an object
implementing :class:`~trimtab.templates.base.Template`) is registered under ``TEMPLATE.name``.

A new template is a new module here; nothing else lists templates. The config's ``targets``
union (:data:`TargetSpec`, discriminated by ``template``) is built from the registered models
in module-name order, so the JSON schema and error messages list them in that order.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Union

from pydantic import Field

from . import __name__ as _package, __path__ as _path
from .base import Template, TargetModel

_SKIP = {"base", "registry"}


def _discover() -> dict[str, Template]:
    found: dict[str, Template] = {}
    for info in sorted(pkgutil.iter_modules(_path), key=lambda m: m.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_package}.{info.name}")
        tpl = getattr(module, "TEMPLATE", None)
        if tpl is None:
            continue
        if tpl.name in found:
            raise RuntimeError(f"template {tpl.name!r} is registered twice ({info.name})")
        found[tpl.name] = tpl
    return found


#: ``template:`` name -> template.
TEMPLATES: dict[str, Template] = _discover()
_BY_MODEL: dict[type, Template] = {tpl.model: tpl for tpl in TEMPLATES.values()}

#: The config's ``targets`` item: one of the registered models, chosen by ``template``.
TargetSpec = Annotated[Union[tuple(tpl.model for tpl in TEMPLATES.values())], Field(discriminator="template")]


def template_for(target: TargetModel) -> Template:
    """The template of a loaded target (by its model class).

    Raises:
        KeyError: ``target`` is not an instance of a registered model.
    """
    try:
        return _BY_MODEL[type(target)]
    except KeyError:
        raise KeyError(f"no template registered for {type(target).__name__}") from None

