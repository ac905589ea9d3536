"""Triage: a priority P1..P4 with reasons for every classified record, under a per-tenant policy.

``Triage(policy, taxonomy)(result, prepared)`` scores the strength of negative sentiment, the
severity of negative topics, severity cues (safety, legal, churn, public escalation) found in the
normalised text with negation handled, repeated contacts, customer value and channel. The rules
live in a YAML policy (``default_policy.yaml``; format in ``README.md``).

Imports only ``nlp`` and ``models.taxonomy``; never torch.
"""

from __future__ import annotations

from models.triage.cues import CueHit, CueMatcher
from models.triage.engine import Signal, Triage, ordinal
from models.triage.io import (
    DEFAULT_POLICY_FILE,
    default_policy,
    dump_policy,
    load_policy,
    policy_to_dict,
)
from models.triage.policy import (
    PRIORITIES,
    CueCategory,
    Priority,
    TriagePolicy,
)
from models.triage.routing import Route, Router, RoutingRules, primary_topic, routing_problems
from models.triage.validate import validate_policy

__all__ = [
    "DEFAULT_POLICY_FILE",
    "PRIORITIES",
    "CueCategory",
    "CueHit",
    "CueMatcher",
    "Priority",
    "Route",
    "Router",
    "RoutingRules",
    "Signal",
    "Triage",
    "TriagePolicy",
    "default_policy",
    "dump_policy",
    "load_policy",
    "ordinal",
    "policy_to_dict",
    "primary_topic",
    "routing_problems",
    "validate_policy",
]
