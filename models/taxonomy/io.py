"""Reading and writing taxonomies as YAML, and the packaged default taxonomy."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from typing import Any

import yaml

from models.taxonomy.schema import Taxonomy, TopicNode, TouchpointNode
from models.taxonomy.validate import Source, check_source, looks_like_path, raise_for_problems

DEFAULT_TAXONOMY_FILE = "default.yaml"
"""File name of the default taxonomy inside the ``models.taxonomy`` package."""

_NODE_KEYS = (
    "id",
    "name",
    "description",
    "seeds",
    "touchpoints",
    "severity",
    "route",
    "status",
    "replaced_by",
)


def load_taxonomy(source: Source) -> Taxonomy:
    """Load and validate a taxonomy from a path, YAML text or a parsed mapping.

    A ``str`` is read as a path when it has no newline and ends in ``.yaml``/``.yml`` or names an
    existing file; otherwise it is YAML text. Raises :class:`nlp.errors.TaxonomyError` whose
    ``details`` list every problem (``path``, ``line``, ``level``, ``message``); warnings alone
    do not stop loading."""
    data, problems = check_source(source)
    origin = "taxonomy"
    if isinstance(source, os.PathLike) or (isinstance(source, str) and looks_like_path(source)):
        origin = f"taxonomy file {os.fspath(source)}"
    raise_for_problems(problems, origin=origin)
    return Taxonomy.model_validate(data)


@cache
def default_taxonomy() -> Taxonomy:
    """The default CEM taxonomy (``cem-default``, version 1) shipped with the package; cached."""
    text = resources.files("models.taxonomy").joinpath(DEFAULT_TAXONOMY_FILE).read_text("utf-8")
    return load_taxonomy(text)


class _Flow(list):
    """A list written in YAML flow style (``[a, b]``), for seeds and hints."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow,
    lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True),
)


def _node_doc(node: TopicNode | TouchpointNode) -> dict[str, Any]:
    raw = node.model_dump(mode="json", exclude_defaults=True, exclude={"parent"})
    doc = {key: raw[key] for key in _NODE_KEYS if key in raw}
    if "seeds" in doc:
        doc["seeds"] = {lang: _Flow(seeds) for lang, seeds in doc["seeds"].items()}
    if "touchpoints" in doc:
        doc["touchpoints"] = _Flow(doc["touchpoints"])
    return doc


def taxonomy_to_dict(taxonomy: Taxonomy) -> dict[str, Any]:
    """The taxonomy as plain data in file layout (parents derived from ids are left out)."""
    doc: dict[str, Any] = {
        "id": taxonomy.id,
        "version": taxonomy.version,
        "name": taxonomy.name.model_dump(),
    }
    if taxonomy.description is not None:
        doc["description"] = taxonomy.description.model_dump()
    doc["touchpoints"] = [_node_doc(n) for n in taxonomy.touchpoints]
    doc["topics"] = [_node_doc(n) for n in taxonomy.topics]
    return doc


def dump_taxonomy(taxonomy: Taxonomy) -> str:
    """YAML text of a taxonomy, Chinese kept readable; ``load_taxonomy`` of it gives it back."""
    return yaml.dump(
        taxonomy_to_dict(taxonomy),
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=100,
        default_flow_style=False,
    )
