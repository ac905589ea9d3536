"""``verbatim eval``: regenerate the evaluation report."""

from __future__ import annotations

from pathlib import Path

import typer

from service.cli.common import err_console, exit_on_error
from service.settings import Settings


def evaluate(
    out: Path = typer.Option(Path("evaluation"), help="Folder for REPORT.md and results.json."),
    model: Path = typer.Option(None, help="Model directory (default: VERBATIM_MODEL or the shipped default model)."),
    peers_only: bool = typer.Option(False, help="Score the peers only."),
    quick: bool = typer.Option(False, help="Seeded subsamples of every split (minutes, for a smoke check)."),
    train_recipes: bool = typer.Option(False, help="Train recipe benchmarks that have no stored run, here (slow on CPU)."),
    study: list[str] = typer.Option(
        None, help="Measure this study again (triage, skytrax, clustering, fewshot; repeatable) and re-render "
        "REPORT.md from the saved results, without re-running the suites."
    ),
    recipe: list[str] = typer.Option(
        None, help="Add our recipe's result on this benchmark (semeval2014_categories, mams_acsa, banking77_full, "
        "banking77_10shot; repeatable) beside the peers of the last full run, and re-render REPORT.md. Replays "
        "evaluation/recipe_runs/NAME.json, else uses or trains (resumably) the model in $VERBATIM_HOME/recipes/NAME."
    ),
    suite: list[str] = typer.Option(
        None, help="Measure this product suite again (sentiment, topics, joined, touchpoints, evidence; repeatable), ours "
        "and its peers, in place of the last full run's, and re-render REPORT.md; the rest of the report stays."
    ),
    retrain: bool = typer.Option(False, help="With --recipe: ignore the stored run and predict with the model in "
                                 "$VERBATIM_HOME/recipes/NAME, training or resuming it first if unfinished."),
    no_recipes: bool = typer.Option(False, help="Product suites only, with their peers: for a second model "
                                    "(e.g. --model models/fast --out evaluation/fast), since a recipe trains "
                                    "its own model and does not depend on --model."),
) -> None:
    """Score the model and its peers on every public test split; write the report."""
    import logging

    from evaluation import run_evaluation
    from evaluation.ours import classifier_predict_fn, recipe_train_fn
    from models.encoder import ensure_base_encoder
    from service.models import load_classifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings()
    if study or recipe or suite:
        from evaluation.study_report import STUDIES, check_study_names, rerender, run_study

        with exit_on_error():
            check_study_names(study or [])  # before anything runs
            if recipe:
                _add_recipes(recipe, out=out, settings=settings, retrain=retrain)
            classifier = None
            if suite:
                from evaluation.run import check_suite_names, rerun_suites

                check_suite_names(suite)  # before loading anything
                classifier = load_classifier(settings, model)
                rerun_suites(suite, predict_fn=classifier_predict_fn(classifier), model_name=classifier.model_id,
                             model_precision=classifier.precision.value, out_dir=out, data_dir=settings.data)
            if study:
                from service.models import resolve_model_dir

                model_dir = resolve_model_dir(settings, model)
                if classifier is None and any(STUDIES[name].needs_classifier for name in study):
                    classifier = load_classifier(settings, model)  # loaded once for --suite and --study
                for name in study:
                    run_study(name, out, classifier=classifier, model_dir=model_dir)
            err_console.print(f"wrote {rerender(out)}" + (f" and {out / 'results.json'}" if recipe or suite else ""))
        return
    with exit_on_error():
        base = ensure_base_encoder(settings.home)
        predict_fn, name, train_fn = None, None, None
        if not peers_only:
            classifier = load_classifier(settings, model)
            predict_fn, name = classifier_predict_fn(classifier), classifier.model_id
            train_fn = recipe_train_fn(base_dir=base, train_here=train_recipes, work_dir=settings.home / "recipes")
        from evaluation.run import SUITES

        run_evaluation(predict_fn=predict_fn, out_dir=out, quick=quick, data_dir=settings.data,
                       model_name=name, model_precision=None if peers_only else classifier.precision.value,
                       recipe_train_fn=train_fn, suites=[s for s in SUITES if not (no_recipes and s == "recipe")])
        err_console.print(f"wrote {out / 'REPORT.md'} and {out / 'results.json'}")


def _add_recipes(names: list[str], *, out: Path, settings: Settings, retrain: bool) -> None:
    """``--recipe``: our recipe's result on each named benchmark, added to the last full run's results."""
    from evaluation.recipe import check_recipe_names
    from evaluation.report import pct
    from evaluation.run import add_recipe_results
    from models.encoder import ensure_base_encoder

    names = check_recipe_names(names)  # before building or loading anything
    base = ensure_base_encoder(settings.home)
    results = add_recipe_results(names, out_dir=out, data_dir=settings.data, base_dir=base,
                                 work_dir=settings.home / "recipes", retrain=retrain)
    for name in names:
        block = results["recipe"][name]
        p = block["predictors"]["verbatim"]
        score = (f"accuracy {pct(p['accuracy'])}" if block["kind"] == "intent" else
                 f"detection F1 {pct(p['detection_f1'])}, polarity 3-way {pct(p.get('polarity_accuracy_3way'))}")
        err_console.print(f"{name}: {score} ({p['source']}; peers from the full run of {block['peers_from']})",
                          highlight=False, soft_wrap=True)
