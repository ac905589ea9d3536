"""Taxonomies: the YAML format, validation, the default CEM taxonomy, and version diffs.

Imports only ``nlp`` (for errors), pydantic and PyYAML; never torch.
"""

from __future__ import annotations

from models.taxonomy.checks import MIN_SEEDS, RECOMMENDED_SEEDS
from models.taxonomy.diff import (
    ChangeKind,
    NodeChange,
    TaxonomyDiff,
    diff_taxonomies,
    label_mapping,
)
from models.taxonomy.io import (
    DEFAULT_TAXONOMY_FILE,
    default_taxonomy,
    dump_taxonomy,
    load_taxonomy,
    taxonomy_to_dict,
)
from models.taxonomy.problems import Problem, ProblemLevel
from models.taxonomy.schema import (
    LANGS,
    LocalizedText,
    NodeKind,
    NodeStatus,
    Seeds,
    Severity,
    Taxonomy,
    TopicNode,
    TouchpointNode,
)
from models.taxonomy.validate import validate_taxonomy

__all__ = [
    "DEFAULT_TAXONOMY_FILE",
    "LANGS",
    "MIN_SEEDS",
    "RECOMMENDED_SEEDS",
    "ChangeKind",
    "LocalizedText",
    "NodeChange",
    "NodeKind",
    "NodeStatus",
    "Problem",
    "ProblemLevel",
    "Seeds",
    "Severity",
    "Taxonomy",
    "TaxonomyDiff",
    "TopicNode",
    "TouchpointNode",
    "default_taxonomy",
    "diff_taxonomies",
    "dump_taxonomy",
    "label_mapping",
    "load_taxonomy",
    "taxonomy_to_dict",
    "validate_taxonomy",
]
