"""Driver-ranking validation on Skytrax lounge and seat reviews, where sub-ratings are ground truth.

Each review has an overall rating and 1-5 sub-ratings (lounge: comfort, cleanliness, bar, catering,
washrooms, wifi, staff; seat: legroom, recline, width, aisle space, TV, power, storage). Two
rankings of the same aspects are compared:

- **sub-ratings** (ground truth): Shapley R^2 shares of the overall rating regressed on the
  sub-ratings, with the sub-ratings that map to one aspect entered as one player;
- **text alone**: the review texts classified by our model, the driver matrix of topic x polarity
  indicators (exactly what ``verbatim analyze`` ranks), and each aspect's share of explained
  variance = the relative importance of its drivers taken together (both polarities).

Aspects are taxonomy nodes (``spec/taxonomy.md``); the mapping from sub-ratings was fixed from
the taxonomy's definitions before looking at any model output (:data:`ASPECTS`). Spearman's rho
is computed per file over the aspects both rankings cover, and pooled over both files (each
aspect's share within its own file). Lounge overall ratings above 5 (67 rows on a different
scale) are left out; sub-ratings present in under half the rows (seat power and storage) are
dropped. The result holds counts, importances and ids of nothing from the data: no texts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

STUDY_FILE = Path(__file__).resolve().parent / "studies" / "skytrax.json"

#: Sub-rating column -> taxonomy node (a leaf, or a level-1 id covering all its leaves).
ASPECTS: dict[str, dict[str, str]] = {
    "lounge": {
        "comfort_rating": "environment.facilities",  # seating, space, quiet of the place
        "washrooms_rating": "environment.facilities",  # amenities
        "wifi_connectivity_rating": "environment.facilities",  # "wifi and equipment of the place"
        "cleanliness_rating": "environment.cleanliness",
        "bar_beverages_rating": "product.quality",  # the core service: food and drink
        "catering_rating": "product.quality",
        "staff_service_rating": "service",  # attitude, responsiveness, resolution
    },
    "seat": {  # in a seat review the seat is the core product ("use: ... the seat")
        "seat_legroom_rating": "product",
        "seat_recline_rating": "product",
        "seat_width_rating": "product",
        "aisle_space_rating": "product",
        "seat_storage_rating": "product",
        "viewing_tv_rating": "environment.facilities",  # cabin equipment
        "power_supply_rating": "environment.facilities",
    },
}
FILES = {"lounge": "en/skytrax_lounge.csv.gz", "seat": "en/skytrax_seat.csv.gz"}
#: Highest overall rating kept per file (the lounge file mixes in a few 6-10 values).
MAX_OVERALL = {"lounge": 5.0, "seat": 10.0}
MIN_PRESENT = 0.5  # a sub-rating present in fewer rows than this share is dropped

ClassifyFn = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def load_reviews(name: str, data_dir: Path | None = None) -> pd.DataFrame:
    """One Skytrax file with its text, overall rating and sub-ratings checked to be there."""
    from nlp.errors import InvalidFileError
    from training.data import data_dir as resolve
    from training.data.files import data_file

    path = data_file(resolve(data_dir), FILES[name])
    frame = pd.read_csv(path)
    needed = ["content", "overall_rating", *ASPECTS[name]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidFileError(f"{path} lacks the columns {missing}; expected the Skytrax {name} schema")
    return frame


def _matches(topic: str, aspect: str) -> bool:
    return topic == aspect or topic.startswith(aspect + ".")


def aspect_groups(columns: Sequence[str], mapping: Mapping[str, str]) -> dict[str, list[int]]:
    """Aspect -> indices of ``columns`` that belong to it (sub-rating names or driver names)."""
    groups: dict[str, list[int]] = {}
    for aspect in dict.fromkeys(mapping.values()):
        idx = [j for j, c in enumerate(columns) if mapping.get(c) == aspect
               or ":" in c and _matches(c.split(":", 1)[0], aspect)]
        if idx:
            groups[aspect] = idx
    return groups


def _shares(parts: np.ndarray, names: Sequence[str], total: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    shares = parts / np.where(total > 1e-12, total, np.inf)[:, None]
    out = {}
    for j, name in enumerate(names):
        row: dict[str, Any] = {"importance": round(float(shares[0, j]), 4)}
        if len(shares) > 1:
            lo, hi = np.percentile(shares[1:, j], [100 * alpha / 2, 100 * (1 - alpha / 2)])
            row["ci"] = [round(float(lo), 4), round(float(hi), 4)]
        out[name] = row
    return out


def subrating_importance(frame: pd.DataFrame, mapping: Mapping[str, str], *, n_bootstrap: int = 200,
                         random_state: int = 0) -> dict[str, Any]:
    """Ground truth: each aspect's Shapley share of the overall rating explained by sub-ratings."""
    from models.analytics.drivers import relative_importance

    present = frame[list(mapping)].notna().mean()
    used = [c for c in mapping if present[c] >= MIN_PRESENT]
    rows = frame[used + ["overall_rating"]].dropna()
    groups = aspect_groups(used, mapping)
    parts, method = relative_importance(rows[used].to_numpy(), rows["overall_rating"].to_numpy(),
                                        groups=list(groups.values()), n_bootstrap=n_bootstrap,
                                        random_state=random_state)
    total = parts.sum(axis=1)
    return {"n": len(rows), "r2": round(float(total[0]), 4), "method": method.value,
            "dropped": [c for c in mapping if c not in used],
            "aspects": _shares(parts, list(groups), total)}


def text_importance(results: Sequence[dict[str, Any]], y: np.ndarray, aspects: Sequence[str], *,
                    n_bootstrap: int = 200, random_state: int = 0, min_support: int = 30) -> dict[str, Any]:
    """Text alone: rank topic x polarity drivers as the product does, then each aspect's share of
    the explained variance from its drivers together (other drivers stay in the model)."""
    from models.analytics.drivers import DriverRanker, driver_matrix, relative_importance

    matrix = driver_matrix(results)
    ranker = DriverRanker(n_bootstrap=n_bootstrap, min_support=min_support,
                          random_state=random_state).fit(matrix, y)
    columns = list(matrix.columns)
    groups = aspect_groups(columns, {a: a for a in aspects})
    covered = {j for idx in groups.values() for j in idx}
    players = [*groups.values(), *([j] for j in range(len(columns)) if j not in covered)]
    parts, method = relative_importance(matrix.to_numpy(), y, groups=players, n_bootstrap=n_bootstrap,
                                        random_state=random_state)
    total = parts.sum(axis=1)
    top = [{k: row[k] for k in ("driver", "support", "importance", "coef", "significant", "low_support", "rank")}
           for row in ranker.table_[:12]]
    return {"n": ranker.n_samples_, "r2": round(ranker.r2_, 4), "method": method.value,
            "drivers": len(columns), "aspects": _shares(parts[:, : len(groups)], list(groups), total),
            "mentions": {a: int((matrix.iloc[:, idx].to_numpy().max(axis=1) > 0).sum()) for a, idx in groups.items()},
            "top_drivers": top}


def polarity_check(results: Sequence[dict[str, Any]], frame: pd.DataFrame, mapping: Mapping[str, str]) -> dict[str, Any]:
    """Mean sub-rating of each aspect where the text says it is negative, positive, or is silent."""
    out: dict[str, Any] = {}
    for aspect in dict.fromkeys(mapping.values()):
        cols = [c for c in mapping if mapping[c] == aspect]
        score = frame[cols].mean(axis=1, skipna=True).to_numpy()
        said = [{t.get("polarity") for t in r.get("topics") or () if _matches(t["id"], aspect)} for r in results]
        row = {}
        for label, pick in (("negative", lambda s: "negative" in s and "positive" not in s),
                            ("positive", lambda s: "positive" in s and "negative" not in s),
                            ("not_mentioned", lambda s: not s)):
            mask = np.array([pick(s) for s in said]) & ~np.isnan(score)
            row[label] = {"n": int(mask.sum()), "mean": round(float(score[mask].mean()), 3) if mask.any() else None}
        out[aspect] = row
    return out


def compare(truth: Mapping[str, Any], text: Mapping[str, Any]) -> dict[str, Any]:
    """Spearman's rho between two aspect rankings, over the aspects both cover."""
    from scipy.stats import spearmanr

    common = [a for a in truth if a in text]
    out: dict[str, Any] = {"aspects": common, "n_aspects": len(common), "spearman": None, "p_value": None}
    if len(common) >= 2:
        a = [truth[k]["importance"] for k in common]
        b = [text[k]["importance"] for k in common]
        rho, p = spearmanr(a, b)
        out["spearman"] = None if np.isnan(rho) else round(float(rho), 4)
        out["p_value"] = None if len(common) < 3 or np.isnan(p) else round(float(p), 4)
    return out


def default_classify_fn() -> ClassifyFn:
    """The shipped default model under ``$VERBATIM_HOME`` (base encoder built there if missing)."""
    import os

    from platformdirs import user_data_dir

    from models.classifier import default_model_dir
    from models.classifier.predict import Classifier
    from models.encoder import ensure_base_encoder

    home = Path(os.environ.get("VERBATIM_HOME") or user_data_dir("verbatim", appauthor=False))
    return Classifier.load(default_model_dir(), base_dir=ensure_base_encoder(home)).classify


def run_skytrax(classify_fn: ClassifyFn | None = None, *, data_dir: Path | None = None, max_reviews: int = 1500,
                seed: int = 2015, n_bootstrap: int = 200, batch_size: int = 64) -> dict[str, Any]:
    """Both files: ground truth vs text-alone rankings, Spearman per file and pooled."""
    classify_fn = classify_fn or default_classify_fn()
    result: dict[str, Any] = {"max_reviews": max_reviews, "seed": seed, "n_bootstrap": n_bootstrap,
                              "mapping": ASPECTS, "files": {}}
    pooled_truth, pooled_text = {}, {}
    for name in FILES:
        frame = load_reviews(name, data_dir)
        frame = frame[frame["overall_rating"].between(1, MAX_OVERALL[name])]
        truth = subrating_importance(frame, ASPECTS[name], n_bootstrap=n_bootstrap, random_state=seed)
        sample = frame.sample(n=min(max_reviews, len(frame)), random_state=seed).reset_index(drop=True)
        started = time.perf_counter()
        results: list[dict[str, Any]] = []
        for start in range(0, len(sample), batch_size):
            chunk = sample["content"].iloc[start : start + batch_size].astype(str).tolist()
            results += classify_fn([{"id": str(start + i), "text": t, "lang": "en"} for i, t in enumerate(chunk)])
            log.info("skytrax %s: %d/%d classified", name, len(results), len(sample))
        seconds = time.perf_counter() - started
        ok = np.array(["error" not in r for r in results])
        results = [r for r in results if "error" not in r]
        kept = sample[ok].reset_index(drop=True)
        text = text_importance(results, kept["overall_rating"].to_numpy(float), list(dict.fromkeys(ASPECTS[name].values())),
                               n_bootstrap=n_bootstrap, random_state=seed)
        result["files"][name] = {
            "rows": len(frame), "classified": len(results), "failed": int((~ok).sum()),
            "classify_seconds": round(seconds, 1), "subratings": truth, "text": text,
            "comparison": compare(truth["aspects"], text["aspects"]),
            "polarity_check": polarity_check(results, kept, {c: a for c, a in ASPECTS[name].items()
                                                             if c not in truth["dropped"]}),
        }
        pooled_truth |= {f"{name}/{a}": v for a, v in truth["aspects"].items()}
        pooled_text |= {f"{name}/{a}": v for a, v in text["aspects"].items()}
    result["pooled"] = compare(pooled_truth, pooled_text)
    return result


def render_skytrax(result: Mapping[str, Any]) -> list[str]:
    """Markdown lines: per file, the two rankings side by side, Spearman, and the polarity check."""
    pooled = result["pooled"]
    lines = ["## Driver ranking vs Skytrax sub-ratings", "",
             "Ground truth: Shapley R^2 shares of the overall rating on the sub-ratings (grouped by taxonomy "
             "aspect). Text alone: our model's topic x polarity drivers of the same overall rating, each "
             f"aspect's drivers taken together. Up to {result['max_reviews']} reviews per file classified "
             f"(seed {result['seed']}); 95% bootstrap intervals ({result['n_bootstrap']} resamples).", "",
             f"**Pooled Spearman over {pooled['n_aspects']} file/aspect pairs: {_fmt(pooled['spearman'])}"
             f" (p = {_fmt(pooled['p_value'])}).**", ""]
    for name, f in result["files"].items():
        truth, text, cmp_ = f["subratings"], f["text"], f["comparison"]
        lines += [f"### {name} ({f['classified']} reviews classified, {truth['n']} with all sub-ratings)", "",
                  f"Sub-ratings R^2 {truth['r2']:.2f} ({truth['method']}); text drivers R^2 {text['r2']:.2f} "
                  f"({text['drivers']} drivers, {text['method']}). Spearman over {cmp_['n_aspects']} aspects: "
                  f"{_fmt(cmp_['spearman'])}" + (f" (p = {_fmt(cmp_['p_value'])})" if cmp_["p_value"] is not None else "")
                  + (f". Dropped sparse sub-ratings: {', '.join(truth['dropped'])}" if truth["dropped"] else ""), "",
                  "| aspect | sub-rating share | text share | reviews mentioning | mean sub-rating: text negative / positive / silent |",
                  "|---|---|---|---|---|"]
        for aspect in truth["aspects"]:
            t, x = truth["aspects"][aspect], text["aspects"].get(aspect)
            pc = f["polarity_check"].get(aspect, {})
            means = " / ".join(f"{_fmt(pc[k]['mean'])} (n={pc[k]['n']})" for k in ("negative", "positive", "not_mentioned")
                               if k in pc)
            lines.append(f"| {aspect} | {_share(t)} | {_share(x) if x else 'not found in text'} | "
                         f"{text['mentions'].get(aspect, 0)} | {means} |")
        lines.append("")
    return lines


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _share(row: Mapping[str, Any]) -> str:
    ci = row.get("ci")
    return f"{row['importance']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def main() -> None:  # pragma: no cover - the study run itself
    import json

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run_skytrax()
    STUDY_FILE.parent.mkdir(exist_ok=True)
    STUDY_FILE.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print("\n".join(render_skytrax(result)))


if __name__ == "__main__":  # pragma: no cover
    main()
