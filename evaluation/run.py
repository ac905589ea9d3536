"""``run_evaluation``: every suite, one results dict, ``REPORT.md`` and ``results.json``."""

from __future__ import annotations

import json
import logging
import math
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluation.suite import OURS, PEER_NAMES, TFIDF, Context, PredictFn

log = logging.getLogger(__name__)

SUITES = ("sentiment", "topics", "joined", "touchpoints", "evidence", "recipe")


def run_evaluation(
    *,
    predict_fn: PredictFn | None = None,
    out_dir: Path | str = Path("evaluation"),
    quick: bool = False,
    data_dir: Path | str | None = None,
    model_name: str | None = None,
    model_precision: str | None = None,
    recipe_train_fn: Any = None,
    peers: Sequence[str] = PEER_NAMES,
    suites: Sequence[str] = SUITES,
    encoder: Any = None,
    seed: int = 0,
    quick_test: int = 200,
    quick_train: int = 2000,
    embed_max_train: int | None = 8_000,
    embed_max_dev: int | None = 1_000,
    c_grid: Sequence[float] = (0.5, 2.0, 8.0),
    target_notes: dict[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score our model (``predict_fn``) and the peers on every test split; write the report.

    ``predict_fn(texts: list[str]) -> list[dict]`` returns one contract record per text (see
    :mod:`evaluation.scoring`); ``None`` runs the peers only and the report says so.
    ``model_name`` and ``model_precision`` (fp32, bf16, int8) name it in the report.
    ``recipe_train_fn(task) -> predictor`` trains our architecture on a recipe benchmark (see
    :mod:`evaluation.recipe`). ``encoder`` (with ``encode(texts, prefix=...)``) serves the frozen
    embedding peer; by default the base encoder is built/loaded under ``$VERBATIM_HOME``.
    ``quick`` subsamples train and test splits with ``seed`` (for tests). ``target_notes`` maps a
    data set or recipe benchmark name to a sentence saying why its target was missed. Writes
    ``out_dir/REPORT.md`` and ``out_dir/results.json`` and returns the results dict.
    """
    from tqdm.auto import tqdm

    from evaluation import product, recipe
    from evaluation.report import render

    unknown = set(suites) - set(SUITES) | set(peers) - set(PEER_NAMES)
    if unknown:
        from nlp.errors import InvalidInputError

        raise InvalidInputError(f"unknown suites or peers: {sorted(unknown)}; suites are "
                                f"{list(SUITES)}, peers {list(PEER_NAMES)}")
    ctx = Context(data_dir=data_dir, quick=quick, quick_test=quick_test, quick_train=quick_train,
                  seed=seed, predict_fn=predict_fn, peers=tuple(peers), encoder=encoder,
                  embed_max_train=embed_max_train, embed_max_dev=embed_max_dev, c_grid=tuple(c_grid))
    runners = {
        "sentiment": product.run_sentiment,
        "topics": product.run_topics,
        "joined": product.run_joined,
        "touchpoints": product.run_touchpoints,
        "evidence": product.run_evidence,
        "recipe": lambda c: recipe.run_recipe_benchmarks(recipe_train_fn, ctx=c),
    }
    results: dict[str, Any] = {}
    for name in tqdm([s for s in SUITES if s in suites], desc="evaluation", disable=not progress):
        log.info("suite %s", name)
        results[name] = runners[name](ctx)
    if TFIDF in ctx.peers:
        ctx.note("TF-IDF word 1–2-grams use the project's segmenter (nlp.segment.Segmenter, stop "
                 "words kept: negations carry sentiment); character n-grams are char_wb 1–4; at "
                 "most 200,000 features in all.")
    ctx.note("Data sets without a dev split (semeval2014/2016, banking77, chinese_absa_products, "
             "zhijiang) use a seeded 10% of train as dev; zhijiang's released dev split is its "
             "test because its test labels were never released.")
    results["meta"] = {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "ours_evaluated": predict_fn is not None, "model": model_name, "precision": model_precision,
        "recipe_trained": recipe_train_fn is not None,
        "quick": quick, "quick_test": quick_test, "quick_train": quick_train, "seed": seed,
        "peers": list(ctx.peers), "c_grid": list(c_grid), "suites": list(suites),
        "python": platform.python_version(), "notes": ctx.notes,
        "target_notes": dict(target_notes or {}),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_results(out / "results.json", results)
    from evaluation.study_report import load_studies

    (out / "REPORT.md").write_text(render({**results, "studies": load_studies(out)}), encoding="utf-8")
    log.info("wrote %s and %s", out / "REPORT.md", out / "results.json")
    return results


def check_suite_names(names: Sequence[str]) -> None:
    """Refuse names that are not product suites, naming the ones there are."""
    unknown = sorted(set(names) - (set(SUITES) - {"recipe"}))
    if unknown:
        from nlp.errors import InvalidInputError

        raise InvalidInputError(f"unknown suite(s): {', '.join(unknown)}; --suite takes "
                                f"{', '.join(s for s in SUITES if s != 'recipe')} (recipes: --recipe NAME)")


def rerun_suites(
    names: Sequence[str],
    *,
    predict_fn: PredictFn,
    model_name: str | None,
    model_precision: str | None = None,
    out_dir: Path | str = Path("evaluation"),
    data_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Measure the named product suites again (ours and their peers, as the full run would) and
    put them in place of the last full run's, which keeps everything else; re-render REPORT.md.

    The run uses the saved run's seed, quick settings and peers, so the splits are the same.
    """
    import tempfile

    from evaluation.study_report import rerender
    from nlp.errors import InvalidInputError

    check_suite_names(names)
    out = Path(out_dir)
    results_file = out / "results.json"
    if not results_file.is_file():
        raise InvalidInputError(f"{results_file} does not exist: run the full `verbatim eval` once first.")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    meta = results["meta"]
    with tempfile.TemporaryDirectory(prefix="verbatim-eval-") as tmp:
        fresh = run_evaluation(
            predict_fn=predict_fn, out_dir=tmp, data_dir=data_dir, model_name=model_name,
            model_precision=model_precision, suites=list(names), peers=meta["peers"], seed=meta["seed"],
            quick=meta["quick"], quick_test=meta["quick_test"], quick_train=meta["quick_train"],
            c_grid=meta["c_grid"], progress=False,
        )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for name in names:
        results[name] = fresh[name]
        meta.setdefault("suites_rerun", {})[name] = {"at": now, "model": model_name, "precision": model_precision}
    _write_results(results_file, results)
    rerender(out)
    return results


def add_recipe_results(
    names: Sequence[str],
    *,
    out_dir: Path | str = Path("evaluation"),
    data_dir: Path | str | None = None,
    base_dir: Path | None = None,
    work_dir: Path | None = None,
    retrain: bool = False,
    runs_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure our recipe on the named benchmarks and add it to the last full run's results.

    For each name (see :data:`evaluation.recipe.RECIPE_NAMES`) our predictor comes from
    :func:`evaluation.ours.recipe_predictor` (the stored run, a finished model under
    ``work_dir/<name>/model``, or training there); fresh predictions are stored under
    ``runs_dir`` (default ``evaluation/recipe_runs``). Only the ``verbatim`` entry of that
    benchmark in ``out_dir/results.json`` changes, with when it was measured; the peers stay
    those of the full run, whose date the entry records as ``peers_from``. ``REPORT.md`` is then
    re-rendered from the saved results, no suite is re-run. Returns the updated results.
    """
    from evaluation.ours import recipe_predictor, store_recipe_run
    from evaluation.recipe import check_recipe_names, prepare_tasks, score_task
    from evaluation.study_report import rerender
    from nlp.errors import InvalidInputError

    names = check_recipe_names(names)
    results_file = Path(out_dir) / "results.json"
    if not results_file.is_file():
        raise InvalidInputError(f"{results_file} does not exist: run the full `verbatim eval` once first; "
                                "`--recipe` adds our result beside the peers it measured.")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    meta, blocks = results["meta"], results.get("recipe") or {}
    absent = [n for n in names if n not in blocks]
    if absent:
        raise InvalidInputError(f"{results_file} has no recipe results for {', '.join(absent)} (its run left "
                                "the recipe suite out): run the full `verbatim eval` first.")
    ctx = Context(data_dir=data_dir, quick=meta["quick"], quick_test=meta["quick_test"],
                  quick_train=meta["quick_train"], seed=meta["seed"])
    tasks = {t.name: t for t in prepare_tasks(ctx)}
    for name in names:
        task, block = tasks[name], blocks[name]
        if (block["n_train"], block["n_test"]) != (len(task.train), len(task.test)):
            raise InvalidInputError(
                f"{name}: the saved peers were measured on {block['n_train']} train / {block['n_test']} test "
                f"texts, this data gives {len(task.train)} / {len(task.test)}; run the full `verbatim eval` again.")
        predictor, info = recipe_predictor(task, base_dir=base_dir, work_dir=work_dir, retrain=retrain,
                                           runs_dir=runs_dir)
        if info["source"] != "stored run":
            if task.kind != "intent" and isinstance(getattr(predictor, "threshold", None), float):
                info["detection_threshold"] = round(predictor.threshold, 4)  # chosen on dev (training.recipe)
            path, predictor = store_recipe_run(task, predictor, runs_dir)
            log.info("recipe %s: test predictions stored in %s", name, path)
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        ours = {**score_task(task, predictor), **info, "measured": now}
        if OURS in block["predictors"]:
            block["predictors"][OURS] = ours
        else:
            block["predictors"] = {OURS: ours, **block["predictors"]}
        block["ours_added"], block["peers_from"] = now, meta["generated"]
        log.info("recipe %s ours: %s", name, {k: v for k, v in ours.items() if isinstance(v, float)})
    _write_results(results_file, results)
    rerender(out_dir)
    return results


def _write_results(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(_clean(results), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
