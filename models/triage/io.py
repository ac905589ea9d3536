"""Reading and writing triage policies as YAML, and the packaged default policy."""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from typing import Any

import yaml

from models.taxonomy import Taxonomy
from models.triage.policy import TriagePolicy
from models.triage.validate import (
    PolicySource,
    check_policy_source,
    looks_like_path,
    raise_for_problems,
)

__all__ = ["DEFAULT_POLICY_FILE", "default_policy", "dump_policy", "load_policy", "policy_to_dict"]

DEFAULT_POLICY_FILE = "default_policy.yaml"
"""File name of the default policy inside the ``models.triage`` package."""


def load_policy(
    source: PolicySource | TriagePolicy, *, taxonomy: Taxonomy | None = None
) -> TriagePolicy:
    """Load and validate a policy from a path, YAML text or a parsed mapping.

    A ``str`` is read as a path when it has no newline and ends in ``.yaml``/``.yml`` or names an
    existing file; otherwise it is YAML text. With a ``taxonomy``, topic ids must exist in it.
    Raises :class:`nlp.errors.PolicyError` whose ``details`` list every problem (``path``,
    ``line``, ``level``, ``message``); warnings alone do not stop loading."""
    if isinstance(source, TriagePolicy):
        source = policy_to_dict(source)
    policy, problems = check_policy_source(source, taxonomy=taxonomy)
    origin = "triage policy"
    if isinstance(source, os.PathLike) or (isinstance(source, str) and looks_like_path(source)):
        origin = f"triage policy file {os.fspath(source)}"
    raise_for_problems(problems, origin=origin)
    assert policy is not None  # no error means it parsed
    return policy


@cache
def default_policy() -> TriagePolicy:
    """The default policy (``default``) shipped with the package; cached."""
    text = resources.files("models.triage").joinpath(DEFAULT_POLICY_FILE).read_text("utf-8")
    return load_policy(text)


def policy_to_dict(policy: TriagePolicy) -> dict[str, Any]:
    """The policy as plain data in file layout."""
    return policy.model_dump(mode="json", exclude_none=True)


def dump_policy(policy: TriagePolicy) -> str:
    """YAML text of a policy, Chinese kept readable; ``load_policy`` of it gives it back."""
    return yaml.dump(
        policy_to_dict(policy),
        Dumper=yaml.SafeDumper,
        allow_unicode=True,
        sort_keys=False,
        width=100,
        default_flow_style=False,
    )
