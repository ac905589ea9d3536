"""Taxonomy documents for the taxonomy API and CLI tests: the default and an analyst's edit of it."""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml

from models.taxonomy import default_taxonomy, taxonomy_to_dict

ALLERGY_SEEDS = {
    "zh": ["吃完过敏了", "菜里有花生没有标注", "吃了拉肚子", "食材不新鲜", "东西吃出了异物"],
    "en": ["had an allergic reaction", "nobody said it contained nuts", "got food poisoning",
           "the fish was not fresh", "found a hair in my food"],
}  # fmt: skip


def default_doc(key: str = "cem-default") -> dict[str, Any]:
    """The shipped default taxonomy as plain data, under ``key``."""
    doc = json.loads(json.dumps(taxonomy_to_dict(default_taxonomy())))  # plain lists and dicts
    doc["id"] = key
    return doc


def edited(doc: dict[str, Any]) -> dict[str, Any]:
    """An analyst's next version: food safety added, promotions merged into value, couriers
    renamed (zh and en)."""
    doc = copy.deepcopy(doc)
    topics = doc["topics"]
    for node in topics:
        if node["id"] == "price.promotion":
            node["status"] = "retired"
            node["replaced_by"] = "price.value"
        if node["id"] == "delivery.courier":
            node["name"] = {"zh": "配送员", "en": "Couriers and riders"}
    topics.append({
        "id": "food_safety", "name": {"zh": "过敏/食品安全", "en": "Allergies and food safety"},
        "description": {"zh": "过敏原、食物中毒、食材新鲜度和异物", "en": "Allergens, food poisoning, freshness and foreign objects"},
    })  # fmt: skip
    topics.append({
        "id": "food_safety.allergens", "name": {"zh": "过敏原", "en": "Allergens"},
        "description": {"zh": "未标注的过敏原和过敏反应", "en": "Undeclared allergens and allergic reactions"},
        "seeds": ALLERGY_SEEDS, "severity": "critical",
    })  # fmt: skip
    return doc


def to_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)


def default_yaml(key: str = "cem-default") -> str:
    return to_yaml(default_doc(key))


__all__ = ["ALLERGY_SEEDS", "default_doc", "default_yaml", "edited", "to_yaml"]
