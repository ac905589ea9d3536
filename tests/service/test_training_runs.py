"""Training runs over HTTP: a job with progress, the version it registers, failures, auto-promotion.

The fine-tune is a fake (``registry_support.FakeTrainer``) that reports progress like the real one
and writes a fake model directory; the labels are real rows stored through :mod:`service.labels`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from registry_support import DEFAULT_VERSION, add_tenant_labels, labelled_verbatims, serving

DEFAULT = f"verbatim-cem@{DEFAULT_VERSION}"
ZH = "快递太慢了，等了一个星期才到。"


def test_a_run_reports_progress_while_it_trains_and_its_result_when_done(
    tmp_path: Path, database_url: str, live_server
) -> None:
    with serving(tmp_path, database_url, live_server) as api:
        api.trainer.gate = gate = threading.Event()
        started = api.call("POST", "/v1/training-runs", json={"holdout": 0.5, "seed": 7})
        assert started.status_code == 202, started.text
        run = started.json()
        assert started.headers["location"] == f"/v1/jobs/{run['job_id']}" == run["job"]
        assert run["status"] == "queued" and run["version"] == f"{DEFAULT_VERSION}+ft.1"
        assert run["taxonomy"] == {"id": None, "key": "cem-default", "version": 1}
        assert run["params"]["labels_at_start"] == 60 and run["params"]["seed"] == 7

        deadline = time.monotonic() + 20
        while (now := api.call("GET", f"/v1/training-runs/{run['id']}", "analyze").json())["status"] != "running" \
                or "step 5" not in now["result"].get("stage", ""):  # fmt: skip
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        assert 0.3 < now["progress"] < 0.9
        job = api.call("GET", f"/v1/jobs/{run['job_id']}").json()
        assert (
            job["kind"] == "training_run"
            and job["state"] == "running"
            and job["counts"] == {"labels": 60}
        )
        gate.set()

        job = api.wait_job(run["job_id"])
        assert job["state"] == "succeeded" and job["progress"] == 1.0
        assert job["counts"] == {"labels": 60, "train": 30, "heldout": 30}
        done = api.call("GET", f"/v1/training-runs/{run['id']}", "analyze").json()
        assert done["status"] == "succeeded" and done["finished_at"] is not None
        assert (
            done["result"]["model_version"] == run["version"]
            and done["result"]["promoted"] is False
        )
        assert done["result"]["macro_f1"] == {"candidate": 1.0, "promoted": 1.0}
        listed = api.call("GET", "/v1/training-runs", "analyze").json()
        assert listed["total"] == 1 and listed["items"][0]["id"] == run["id"]
        # the fine-tune saw the tenant's 60 labels and started from the shipped default model
        assert api.trainer.calls[0]["n"] == 60 and api.trainer.calls[0]["parent_dir"].endswith(
            "shipped-default"
        )


def test_too_few_labels_or_an_unknown_taxonomy_or_parent_are_refused(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    with serving(tmp_path, sqlite_url, live_server, labels=False) as api:
        add_tenant_labels(sqlite_url, "acme", labelled_verbatims()[:12])
        few = api.call("POST", "/v1/training-runs", json={})
        assert few.status_code == 422
        assert few.json()["error"]["details"] == {
            "labels": 12,
            "min_labels": 20,
            "taxonomy": "cem-default",
        }
        assert (
            api.call("POST", "/v1/training-runs", json={"taxonomy": "no-such"}).status_code == 404
        )
        add_tenant_labels(sqlite_url, "acme", labelled_verbatims()[12:])
        assert (
            api.call("POST", "/v1/training-runs", json={"parent": "0.2.0+ft.9"}).status_code == 404
        )
        assert api.call("GET", "/v1/training-runs", "analyze").json()["total"] == 0
        assert api.call("GET", "/v1/training-runs/run_nothing", "analyze").status_code == 404


def test_a_failed_fine_tune_fails_the_run_with_its_reason_and_registers_nothing(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    with serving(tmp_path, sqlite_url, live_server) as api:
        api.trainer.fail = "label 'x' names 'food.safety', which is not an active leaf"
        run = api.call("POST", "/v1/training-runs", json={}).json()
        job = api.wait_job(run["job_id"])
        assert job["state"] == "failed" and "food.safety" in job["error"]
        after = api.call("GET", f"/v1/training-runs/{run['id']}", "analyze").json()
        assert after["status"] == "failed" and "food.safety" in after["error"]
        assert api.call("GET", "/v1/models", "analyze").json()["items"] == []
        # the next run gets the next number; a failed one keeps its own
        api.trainer.fail = None
        assert api.train()["version"] == f"{DEFAULT_VERSION}+ft.2"


def test_promote_on_success_only_when_the_guard_allows(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    with serving(tmp_path, sqlite_url, live_server) as api:
        worse = api.train(misses=("service.attitude",), promote=True)
        assert worse["result"]["promoted"] is False and worse["result"]["guard"]["allowed"] is False
        assert api.classify([ZH]).json()["model"] == DEFAULT

        good = api.train(promote=True)
        assert good["result"]["promoted"] is True
        assert api.classify([ZH]).json()["model"] == f"verbatim-cem@{good['version']}"
        event = api.call("GET", "/v1/models/events", "analyze").json()[0]
        assert event["action"] == "promote" and event["version"] == good["version"]
        assert event["actor"]["name"] == "train-key" and good["id"] in event["reason"]

        # a run from the tenant's own version records that lineage and trains from its directory
        child = api.train(parent=good["version"])
        model = api.call("GET", f"/v1/models/{child['version']}", "analyze").json()
        assert (
            model["lineage"]["parent"] == good["version"]
            and model["guard"]["against"] == good["version"]
        )
        assert api.trainer.calls[-1]["parent_dir"].endswith(good["version"])


def test_a_guard_with_too_few_held_out_labels_allows_and_says_it_checked_nothing(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    with serving(tmp_path, sqlite_url, live_server, labels=False) as api:
        items = labelled_verbatims()
        add_tenant_labels(sqlite_url, "acme", items[:8] + items[20:28] + items[40:48])
        run = api.train(misses=("service.attitude",))  # 4 held out per node, one node all missed
        expected = (
            "no existing node has >= 10 held-out labels (3 have fewer), so no regression could be "
            "checked: label about 20 records per node at holdout 0.5 for the guard to decide"
        )
        assert run["result"]["guard"]["allowed"] is True and run["result"]["guard"]["reasons"] == []
        assert run["result"]["guard"]["notes"] == [expected]
        model = api.call("GET", f"/v1/models/{run['version']}", "analyze").json()
        assert model["guard"]["notes"] == [expected]
        assert model["guard"]["deltas"]["service.attitude"] == -1.0  # reported, not judged


def _tiny_encoder():
    """The tiny-base builder shared with tests/models (not a package, so loaded by path)."""
    import importlib.util
    import sys

    if "tiny_encoder" in sys.modules:
        return sys.modules["tiny_encoder"]
    path = Path(__file__).resolve().parents[1] / "models" / "tiny_encoder.py"
    spec = importlib.util.spec_from_file_location("tiny_encoder", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tiny_encoder"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_real_fine_tune_on_40_labels_through_the_api_serves_the_new_version(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    """The real fine-tune, evaluation and loading on the tiny encoder (its scores mean nothing):
    40 labels in, a version registered with per-node held-out scores, promoted, serving results."""
    import functools

    import torch

    from evaluation.compare import evaluate_on_labels, regression_guard
    from models.classifier.config import ClassifierConfig
    from models.classifier.model import CemClassifier
    from models.classifier.predict import Classifier
    from models.taxonomy import default_taxonomy
    from service.app import create_app
    from service.jobs import JobRunnerConfig
    from service.settings import Settings
    from service.tenant_models import ModelSources
    from service.training_runs import TrainingBackend
    from training.finetune import finetune

    items = labelled_verbatims()
    labels = items[:14] + items[20:33] + items[40:53]  # 14 + 13 + 13 = 40
    texts = [i.text for i in labels] + [ZH]
    base = _tiny_encoder().build_tiny_base(tmp_path / "base", texts)
    torch.manual_seed(0)
    parent = CemClassifier.from_base(
        base,
        default_taxonomy(),
        ClassifierConfig(head_dim=16, lora_r=4, lora_alpha=8, version="0.2.0"),
    ).save_pretrained(tmp_path / "default-model")
    default = Classifier.load(parent, base_dir=base)
    sources = ModelSources(
        models_root=tmp_path / "models", default_dir=lambda: Path(parent), base_dir=lambda: base,
        load=lambda d: Classifier.load(d, base_dir=base),
    )  # fmt: skip
    app = create_app(Settings(home=tmp_path, database_url=sqlite_url), classifier_factory=lambda: default,
                     jobs=JobRunnerConfig(poll_interval_s=0.05))  # fmt: skip
    app.state.model_sources = sources
    app.state.training_backend = TrainingBackend(
        finetune=functools.partial(finetune, replay_data=False, batch_size=8),
        evaluate=evaluate_on_labels, guard=regression_guard,
    )  # fmt: skip
    from registry_support import Api, FakeTrainer, make_keys

    with live_server(app) as base_url:
        api = Api(
            base_url=base_url,
            keys=make_keys(sqlite_url),
            trainer=FakeTrainer(),
            loads=[],
            url=sqlite_url,
        )
        assert add_tenant_labels(sqlite_url, "acme", labels) == 40
        started = api.call("POST", "/v1/training-runs", json={"steps": 12, "holdout": 0.25})
        assert started.status_code == 202, started.text
        job = api.wait_job(started.json()["job_id"], timeout=600)
        assert job["state"] == "succeeded", job
        version = started.json()["version"]
        assert version == "0.2.0+ft.1"
        model = api.call("GET", f"/v1/models/{version}", "analyze").json()
        assert (
            model["data"]["labels"] == 40
            and model["data"]["train"] + model["data"]["heldout"] == 40
        )
        assert model["data"]["heldout"] >= 9 and model["data"]["steps"] == 12
        per_node = model["metrics"]["candidate"]["per_node"]
        assert sum(per_node[t]["support"] for t in ("delivery.timeliness", "service.attitude", "product.quality")) \
            == model["data"]["heldout"]  # fmt: skip
        assert model["metrics"]["promoted"]["model"] == "verbatim-cem@0.2.0"
        assert isinstance(model["guard"]["allowed"], bool)
        saved = json.loads(
            (tmp_path / "models" / api.tenant_id() / version / "config.json").read_text("utf-8")
        )
        assert saved["version"] == version and saved["training"]["labels"] == 40

        promoted = api.call("POST", f"/v1/models/{version}/promote",
                            json={"force": True, "reason": "tiny test model"})  # fmt: skip
        assert promoted.status_code == 200, promoted.text
        result = api.classify([ZH]).json()["results"][0]
        assert result["model"] == f"verbatim-cem@{version}" and result["sentiment"]["label"] in (
            "negative", "neutral", "positive")  # fmt: skip
        for topic in result["topics"]:
            if topic.get("evidence"):
                ev = topic["evidence"]
                assert ZH[ev["start"] : ev["end"]] == ev["text"]


def test_a_run_trains_for_the_tenants_taxonomy_version_with_its_new_node(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    import yaml

    from service.labels import LabelInput

    with serving(tmp_path, sqlite_url, live_server, labels=False) as api:
        made = api.call("POST", "/v1/taxonomies", json={"from": "default", "id": "acme-cem"})
        assert made.status_code == 201, made.text
        doc = yaml.safe_load(api.call("GET", "/v1/taxonomies/acme-cem?format=yaml").text)
        doc["topics"].append({
            "id": "product.safety", "name": {"zh": "过敏/食品安全", "en": "Allergies and food safety"},
            "description": {"zh": "吃的用的东西引起过敏、拉肚子或食物中毒。",
                            "en": "Allergic reactions, illness or food poisoning from what was eaten or used."},
            "seeds": {"zh": ["吃完全身起红疹", "吃完就拉肚子了"], "en": ["broke out in hives", "we all got food poisoning"]},
            "touchpoints": ["use"], "severity": "high",
        })  # fmt: skip
        put = api.call(
            "PUT", "/v1/taxonomies/acme-cem", json={"yaml": yaml.safe_dump(doc, allow_unicode=True)}
        )
        assert put.status_code == 200 and put.json()["current_version"] == 2, put.text
        allergic = [LabelInput(text=t, lang=lang, sentiment="negative", topics={"product.safety": "negative"})
                    for t, lang in [("备注了花生过敏还是放了花生，孩子吃完起了红疹。", "zh"),
                                    ("一家人吃完都上吐下泻。", "zh"),
                                    ("I told them about my nut allergy and got hives.", "en"),
                                    ("We all got food poisoning after the buffet.", "en")]]  # fmt: skip
        add_tenant_labels(sqlite_url, "acme", labelled_verbatims()[:20] + allergic)

        run = api.train()
        # the fine-tune is given version 2 of the tenant's taxonomy, not the shipped default
        # (which lacks product.safety, so a real fine-tune would refuse the labels naming it)
        assert run["taxonomy"]["key"] == "acme-cem" and run["taxonomy"]["version"] == 2
        assert api.trainer.calls[-1]["taxonomy"] == "acme-cem"
        assert api.trainer.calls[-1]["n"] == 24


def test_an_offset_or_limit_out_of_range_is_a_422_naming_the_bound(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    """An offset past any database's integers used to reach SQLite (a 500); every list route
    bounds both, and the largest allowed offset is simply an empty page."""
    huge = "24146332826971127808"
    with serving(tmp_path, sqlite_url, live_server, labels=False) as api:
        for path in ("/v1/training-runs", "/v1/datasets", "/v1/taxonomies", "/v1/labels"):
            for params in ({"offset": huge}, {"offset": "-1"}, {"limit": "0"}, {"limit": "501"}):
                response = api.call("GET", path, "analyze", params=params)
                assert response.status_code == 422, (path, params, response.text)
                error = response.json()["error"]
                assert error["code"] == "invalid_input" and next(iter(params)) in error["message"]
            edge = api.call("GET", path, "analyze", params={"offset": 1_000_000_000, "limit": 500})
            assert edge.status_code == 200 and edge.json()["items"] == [], (path, edge.text)
        message = api.call("GET", "/v1/training-runs", "analyze", params={"offset": huge}).text
        assert "1000000000" in message  # the bound, so the caller can fix the request


@pytest.mark.slow
def test_a_new_node_is_compared_with_the_zero_shot_model_the_tenant_is_served(
    tmp_path: Path, sqlite_url: str, live_server
) -> None:
    """After the tenant adds ``product.safety`` it is served the default model derived for its
    taxonomy, which finds allergy and food-poisoning complaints zero-shot. A run on labels that
    include the node compares the candidate with that model (real, on the held-out labels), not
    with the default model as trained, for which the node does not exist (F1 0)."""
    import dataclasses
    import os

    import yaml
    from classify_support import FakeClassifier
    from registry_support import Api, FakeTrainer, make_keys
    from test_tenant_zero_shot import with_safety

    from evaluation.compare import evaluate_on_labels, regression_guard
    from models.classifier import default_model_dir
    from models.taxonomy import load_taxonomy
    from service.app import create_app
    from service.jobs import JobRunnerConfig
    from service.labels import LabelInput
    from service.model_sources import default_sources, model_version_of
    from service.settings import Settings
    from service.training_runs import TrainingBackend

    if not (default_model_dir() / "config.json").is_file():
        reason = f"the default model is not built yet ({default_model_dir()} has no config.json)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: the real-model test must run)", pytrace=False)
        pytest.skip(reason)
    default_version = model_version_of(default_model_dir())
    # the real default model, base encoder and derivation; new versions go under tmp_path
    sources = dataclasses.replace(default_sources(Settings()), models_root=tmp_path / "models")
    trainer = FakeTrainer()  # its candidate predicts every held-out label: only the other side matters
    app = create_app(
        Settings(home=tmp_path, database_url=sqlite_url, rate_limit_per_minute=0),
        classifier_factory=lambda: FakeClassifier(model_id=f"verbatim-cem@{default_version}"),
        jobs=JobRunnerConfig(poll_interval_s=0.05),
    )
    app.state.model_sources = sources
    app.state.training_backend = TrainingBackend(
        finetune=trainer, evaluate=evaluate_on_labels, guard=regression_guard
    )
    safety = [
        ("备注了花生过敏，宫保鸡丁里还是放了花生，孩子吃完全身起红疹，连夜去了医院。", "zh"),
        ("昨天在这家店吃了海鲜饭，晚上全家上吐下泻，怀疑是食物中毒。", "zh"),
        ("点的沙拉里有花生，我明明备注了过敏，吃了两口嘴唇就肿了。", "zh"),
        ("吃完他们家的外卖，我和老公都拉了一晚上肚子，应该是食物中毒。", "zh"),
        ("I told them twice about my peanut allergy, but the satay came with peanuts and I broke "
         "out in hives within minutes.", "en"),
        ("We all got food poisoning after the chicken at dinner and spent the night vomiting.", "en"),
        ("My son is allergic to milk, we said so when ordering, and the pasta was full of cream: "
         "he broke out in a rash.", "en"),
        ("Two of us were sick with diarrhoea all night after eating the prawns, clearly food "
         "poisoning.", "en"),
    ]  # fmt: skip
    items = labelled_verbatims()
    labels = items[:8] + items[20:28] + items[40:48] + [
        LabelInput(text=t, lang=lang, sentiment="negative", topics={"product.safety": "negative"})
        for t, lang in safety
    ]  # fmt: skip
    with live_server(app) as base_url:
        api = Api(
            base_url=base_url, keys=make_keys(sqlite_url), trainer=trainer, loads=[], url=sqlite_url
        )
        made = api.call("POST", "/v1/taxonomies", json={"from": "default", "id": "acme-cem"})
        assert made.status_code == 201, made.text
        doc = with_safety(yaml.safe_load(api.call("GET", "/v1/taxonomies/acme-cem?format=yaml").text))
        put = api.call(
            "PUT", "/v1/taxonomies/acme-cem", json={"yaml": yaml.safe_dump(doc, allow_unicode=True)}
        )
        assert put.status_code == 200 and put.json()["current_version"] == 2, put.text
        hash8 = load_taxonomy({**doc, "version": 1}).content_hash()[:8]
        assert add_tenant_labels(sqlite_url, "acme", labels) == 32

        started = api.call("POST", "/v1/training-runs", json={"holdout": 0.5})
        assert started.status_code == 202, started.text
        job = api.wait_job(started.json()["job_id"], timeout=600)  # loads and derives the real model
        assert job["state"] == "succeeded", job
        run = api.call("GET", f"/v1/training-runs/{started.json()['id']}").json()
        model = api.call("GET", f"/v1/models/{run['version']}", "analyze").json()
        before = model["metrics"]["promoted"]
        held_safety = before["per_node"]["product.safety"]
        assert held_safety["support"] >= 3  # half of the 8 are held out
        # the zero-shot model finds some of them: the node's "before" is not an empty 0
        assert held_safety["f1"] > 0 and held_safety["recall"] > 0, held_safety
        assert "product.safety" in before["model_nodes"]
        assert model["metrics"]["candidate"]["per_node"]["product.safety"]["f1"] == 1.0
        served = f"verbatim-cem@{default_version}+tax.{hash8}"
        assert before["model"] == served
        assert model["guard"]["against"] is None and model["guard"]["against_model"] == served
        assert run["result"]["guard"]["against_model"] == served
        # 4 held-out labels per existing node: the guard allowed it but says it checked nothing
        assert model["guard"]["allowed"] is True and model["guard"]["reasons"] == []
        assert model["guard"]["notes"][0].startswith("no existing node has >= 10 held-out labels")
