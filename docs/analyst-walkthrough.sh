#!/usr/bin/env bash
# Issue #6, end to end, as an analyst does it: a tenant taxonomy with a new node (过敏/食品安全,
# allergies and food safety), classification before and after, a data set with its review queue,
# labels imported from a CSV (two rows deliberately bad), a training run, the model's per-node
# metrics and regression guard, promotion, and a roll-back with its audit trail.
# The edited taxonomy is served at once, zero-shot: after the PUT of step 3, /v1/classify answers
# with a model derived for it (`verbatim-cem@<version>+tax.<hash8>`) and marks the new node
# `zero_shot`; the training run then learns the node's row (and only the rows the labels speak
# about), and its promoted version serves the node without the flag.
# The narrative with real outputs and timings: docs/analyst-walkthrough.md.
#
# Run from the repository root, after `make install` (or the README's setup):
#
#   mkdir -p /tmp/walkthrough && VB_START_SERVER=1 VERBATIM_DATABASE_URL=sqlite:////tmp/walkthrough/verbatim.db \
#     WORK=/tmp/walkthrough/work VERBATIM_DATA=../shared/data bash docs/analyst-walkthrough.sh
#
# Environment (all optional):
#   VB_URL           the server (default http://127.0.0.1:8765)
#   VB_START_SERVER  1: start `verbatim serve` on VB_URL's port in the background (stopped at the end)
#   VB_KEY           an API key with the admin scope; default: one made now with `verbatim keys create`
#                    (which writes to the database of VERBATIM_HOME / VERBATIM_DATABASE_URL, so give it
#                    the server's settings)
#   VB_TENANT        the tenant of that new key (default acme)
#   VB_TRAIN_STEPS   fine-tuning steps of the training run (default 100)
#   VERBATIM_DATA    the public data sets (default ../shared/data beside the repository)
#   WORK             where the data set, the label file and the taxonomy files go (default
#                    /tmp/verbatim-walkthrough; never inside the repository)
# Needs curl and jq.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VB_URL=${VB_URL:-http://127.0.0.1:8765}
VB_TENANT=${VB_TENANT:-acme}
VB_TRAIN_STEPS=${VB_TRAIN_STEPS:-100}
VERBATIM_DATA=${VERBATIM_DATA:-$ROOT/../shared/data}
WORK=${WORK:-/tmp/verbatim-walkthrough}
VERBATIM=${VERBATIM:-$ROOT/.venv/bin/verbatim}
PY=${PY:-$ROOT/.venv/bin/python}
export VERBATIM_DATA
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "this walkthrough needs $tool" >&2; exit 1; }
done
mkdir -p "$WORK"

step() { printf '\n=== %s ===\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
# vb METHOD PATH [curl options]: the response body on stdout, "HTTP <status>" on stderr
vb() {
  local method=$1 path=$2
  shift 2
  curl -sS -X "$method" "$VB_URL$path" -H "Authorization: Bearer $VB_KEY" \
    -o "$WORK/body.json" -w '%{http_code}' "$@" >"$WORK/status"
  echo "HTTP $(cat "$WORK/status")" >&2
  cat "$WORK/body.json"
}
status() { cat "$WORK/status"; }
minutes() { awk -v s="$1" 'BEGIN { printf "%.1f", s / 60 }'; }

# ---- 1. the server ------------------------------------------------------------------------------
step "1. Start the server"
if [[ ${VB_START_SERVER:-0} == 1 ]]; then
  port=${VB_URL##*:}
  show "verbatim serve --port $port &"
  "$VERBATIM" serve --port "$port" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
fi
started=$(date +%s)
until curl -sf "$VB_URL/readyz" >/dev/null; do
  sleep 2
  if (($(date +%s) - started > 300)); then echo "the server is not ready after 5 minutes" >&2; exit 1; fi
done
curl -sS "$VB_URL/readyz" | jq -c .
echo "ready after $(($(date +%s) - started)) s"

# ---- 2. a key -----------------------------------------------------------------------------------
step "2. An API key for the analyst (admin: classify, analyze, train, triage)"
if [[ -z ${VB_KEY:-} ]]; then
  show "verbatim keys create --tenant $VB_TENANT --scopes admin,classify,analyze,train --name walkthrough"
  VB_KEY=$("$VERBATIM" keys create --tenant "$VB_TENANT" --scopes admin,classify,analyze,train \
    --name walkthrough | tail -n 1)
fi
echo "key: ${VB_KEY:0:10}…"

# ---- 3. the tenant's taxonomy -------------------------------------------------------------------
step "3. The tenant's taxonomy: a copy of the default, then version 2 with product.safety"
show "POST /v1/taxonomies {\"from\": \"default\", \"id\": \"acme-cem\"}"
vb POST /v1/taxonomies -H 'Content-Type: application/json' \
  -d '{"from": "default", "id": "acme-cem", "message": "start from the shipped default"}' |
  jq -c '{id, key, current_version, counts}'
TAX=$(jq -r .id "$WORK/body.json")
if [[ $(status) == 409 ]]; then  # made by an earlier run of this script: use it
  TAX=$(vb GET /v1/taxonomies | jq -r '.items[] | select(.key == "acme-cem") | .id')
fi
vb GET "/v1/taxonomies/$TAX?format=yaml" >"$WORK/taxonomy-v1.yaml" 2>/dev/null

cat >"$WORK/product-safety.yaml" <<'YAML'
id: product.safety
name:
  zh: 过敏/食品安全
  en: Allergies and food safety
description:
  zh: 吃的、用的东西有没有危害健康：食物、化妆品、洗护用品或衣物引起的过敏，吃完后拉肚子、呕吐或食物中毒，饭菜里吃出虫子、头发、异物，以及商家是否照顾过敏和忌口要求。只是不新鲜、难吃而没有健康问题的属于 product.quality。
  en: Whether what was eaten or used harmed the customer's health, covering allergic reactions to food, cosmetics, toiletries or clothes, diarrhoea, vomiting or food poisoning after eating, insects, hair or foreign objects in food, and whether allergy and dietary requests were respected. Food that is merely stale or tastes bad, with no risk to health, belongs to product.quality.
seeds:
  zh:
    - 备注了花生过敏还是放了花生
    - 吃完以后全身起红疹
    - 吃完就拉肚子了
    - 一家人吃了都上吐下泻
    - 饭里吃出了一只虫子
    - 菜里有头发太恶心了
    - 用了这个面霜脸上过敏了
    - 怀疑食物中毒了
  en:
    - I told them about my nut allergy and the dish still had nuts
    - broke out in hives right after eating
    - we all got food poisoning
    - found a hair in my salad
    - there was a bug in the rice
    - the staff took my allergy seriously
    - this cream gave me a rash
    - I was sick all night after the meal
touchpoints: [use]
severity: high
YAML
# insert the node after product.as_described (any YAML editor does; here: Python)
"$PY" - "$WORK/taxonomy-v1.yaml" "$WORK/product-safety.yaml" "$WORK/taxonomy-v2.yaml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
node = yaml.safe_load(open(sys.argv[2], encoding="utf-8"))
ids = [t["id"] for t in doc["topics"]]
doc["topics"].insert(ids.index("product.as_described") + 1, node)
yaml.safe_dump(doc, open(sys.argv[3], "w", encoding="utf-8"), allow_unicode=True, sort_keys=False, width=200)
PY
show "verbatim taxonomy validate $WORK/taxonomy-v2.yaml"
"$VERBATIM" taxonomy validate "$WORK/taxonomy-v2.yaml" || true
show "PUT /v1/taxonomies/$TAX?message=… (Content-Type: text/yaml, the whole document)"
msg=$(jq -rn '"add product.safety (过敏/食品安全)" | @uri')
vb PUT "/v1/taxonomies/$TAX?message=$msg" -H 'Content-Type: text/yaml' --data-binary @"$WORK/taxonomy-v2.yaml" |
  jq -c '{current_version, created, counts, warnings: [.warnings[]?.message]}'
show "GET /v1/taxonomies/$TAX/diff?from=1&to=2"
vb GET "/v1/taxonomies/$TAX/diff?from=1&to=2" | jq '{summary, changes,
  label_mapping: {topics: (.label_mapping.topics | to_entries | map(select(.key != .value)) | from_entries)}}'

# ---- 4. classify before training ----------------------------------------------------------------
ALLERGY='{"items": [
  {"id": "zh-allergy", "text": "备注了花生过敏，宫保鸡丁里还是放了花生，孩子吃完全身起红疹，连夜去了医院。"},
  {"id": "en-allergy", "text": "I told them twice about my peanut allergy, but the satay came with peanuts and I broke out in hives within minutes."}]}'
classify() {
  vb POST /v1/classify -H 'Content-Type: application/json' -d "$ALLERGY" |
    jq '{model, results: [.results[] | {id, model, sentiment: .sentiment.label,
         topics: [.topics[] | {id, polarity, confidence} + (if .zero_shot then {zero_shot} else {} end)],
         priority: .triage.priority}]}'
}
step "4. Classify a zh and an en allergy complaint (before any training: product.safety zero-shot)"
# the tenant's current taxonomy (version 2) has a node the default model was not trained with, so
# the tenant is served the default model derived for it (model verbatim-cem@<default>+tax.<hash8>),
# and product.safety, when it scores above its threshold, comes with "zero_shot": true
show "POST /v1/classify"
classify
show "GET /v1/models (serving: what answers now; serving_base: the registry's model it is derived from)"
vb GET /v1/models | jq -c '{default_model, promoted, serving, serving_base}'

# ---- 5. a data set and the review queue ---------------------------------------------------------
step "5. Upload a data set (150 real reviews, test/dev splits) and read the review queue"
# the record ids of the data set and the analyst's labels for some of them (texts stay in the data)
cat >"$WORK/labels.tsv" <<'TSV'
record_id	sentiment	topics	touchpoints
wm-2942	negative	product.safety:negative	use
wm-4146	negative	product.safety:negative; product.quality:negative	use
wm-4411	negative	product.safety:negative	use
wm-4930	negative	product.safety:negative; delivery.timeliness:positive; product.quality:positive	use; fulfil
wm-5059	negative	product.safety:negative; product.quality:positive	use
wm-6178	negative	product.safety:negative; product.quality:negative	use
wm-6847	negative	product.safety:negative	use
wm-6897	negative	product.safety:negative; product.quality:negative	use
wm-6916	negative	product.safety:negative	use
wm-7684	negative	product.safety:negative	use
wm-8336	negative	product.safety:negative	use
wm-8625	negative	product.safety:negative; product.design:positive	use
wm-8688	negative	product.safety:negative	use
wm-8692	negative	product.safety:negative	use
wm-9623	negative	product.safety:negative; delivery.timeliness:negative; delivery.condition:negative	use; fulfil
wm-9637	negative	product.safety:negative	use
wm-10881	negative	product.safety:negative	use
os-23999	negative	product.safety:negative	use
os-25593	negative	product.safety:negative; product.quality:negative	use
os-32135	negative	product.safety:negative; product.as_described:negative	use
os-37795	negative	product.safety:negative	use
se16-en_BlueRibbonSushi_478218333:1	positive	product.safety:positive; service.attitude:positive
mams-3661	positive	product.safety:positive; service.attitude:positive
mams-3795	positive	product.safety:positive; service.attitude:positive; service.responsiveness:positive
wm-4156	negative	delivery.condition:negative	fulfil
wm-2081	positive	price.value:positive; product.quality:positive	use
wm-5107	negative	product.quality:positive; delivery.timeliness:negative	fulfil; use
wm-8371	negative	delivery.timeliness:negative; delivery.courier:negative	fulfil
wm-582	positive	product.quality:positive; delivery.timeliness:positive	use; fulfil
wm-7051	negative	delivery.timeliness:negative	fulfil
wm-1291	negative	delivery.timeliness:negative; product.quality:positive	fulfil; use
wm-6681	negative	delivery.condition:negative	fulfil
wm-464	positive	delivery.timeliness:positive; product.quality:positive	fulfil; use
wm-1147	positive	product.quality:positive; service.attitude:positive	use
wm-3138	positive	product.quality:positive; delivery.timeliness:positive	use; fulfil
wm-5557	negative	delivery.timeliness:negative; service.attitude:negative; service.responsiveness:negative; service.resolution:negative	fulfil; support
wm-735	positive	product.quality:positive	use
wm-7402	negative	delivery.timeliness:negative; delivery.condition:negative; product.as_described:negative	fulfil
wm-2939	positive	delivery.timeliness:positive	fulfil
wm-8087	negative	product.as_described:negative	fulfil
wm-8055	negative	product.as_described:negative	fulfil
wm-770	negative	product.quality:negative	use
wm-7511	negative	product.as_described:negative; delivery.timeliness:negative	fulfil
wm-7585	negative	product.quality:negative	use
wm-2909	positive	delivery.timeliness:positive; delivery.courier:positive	fulfil
wm-7267	negative	delivery.timeliness:negative; delivery.condition:negative	fulfil
wm-11150	negative	delivery.timeliness:negative	fulfil
wm-3800	positive	delivery.timeliness:positive; service.attitude:positive	fulfil
wm-5458	negative	delivery.timeliness:negative; product.quality:negative; price.value:negative	fulfil; use
wm-7101	negative	product.quality:negative	use
wm-1629	positive	product.quality:positive; delivery.timeliness:negative	use; fulfil
wm-7450	negative	delivery.timeliness:negative; delivery.condition:negative	fulfil
wm-7333	negative	delivery.condition:negative	fulfil
wm-10548	neutral	delivery.timeliness:negative; product.quality:positive	fulfil; use
wm-2510	positive	product.quality:positive; delivery.courier:positive	use; fulfil
wm-1435	neutral	product.design:positive; delivery.timeliness:negative	use; fulfil
wm-7541	negative	product.quality:negative	use
wm-2606	positive	delivery.timeliness:positive; delivery.courier:positive	fulfil
wm-4858	negative	delivery.timeliness:negative	fulfil
wm-1339	positive	product.quality:positive; delivery.courier:positive	use; fulfil
wm-9116	negative	delivery.timeliness:positive; product.design:negative	fulfil; use
wm-6992	negative	product.quality:negative	use
wm-8733	negative	product.quality:positive; delivery.timeliness:negative; delivery.condition:negative	use; fulfil
wm-6524	negative	product.quality:negative; product.design:negative	use
wm-4001	negative	product.design:positive; product.quality:negative	use
se16-en_PagodaRestaurant_479983203:11	positive	product.quality:positive
se16-en_BlueRibbonSushi_478219459:3	negative	price.value:negative
se16-en_BlueRibbonSushi_478218342:3	positive	product.quality:positive
se16-en_PagodaRestaurant_479983203:3	positive	environment.facilities:positive
se16-en_BlueRibbonSushi_478218900:2	negative	environment.facilities:positive; product.quality:negative; price.value:negative
se16-en_ParkChaletGardenRestaurant_477778211:0	negative	service.attitude:negative; product.quality:neutral; price.value:negative
se16-en_OpenSesame_477970938:8	positive	service.attitude:positive; environment.facilities:positive
se16-en_MiopostoCaffe_478542922:3	negative	service.attitude:negative
se16-en_ParkChaletGardenRestaurant_477778210:10	negative	service.responsiveness:negative
se16-en_MiopostoCaffe_478542922:1	positive	product.quality:positive
se16-en_MercedesRestaurant_478010603:4	positive	service.responsiveness:positive
se16-en_ParkChaletGardenRestaurant_477778210:5	negative	service.responsiveness:negative
se16-en_ParkChaletGardenRestaurant_477778211:10	negative	delivery.timeliness:negative
se16-en_SchoonerOrLater_477965849:3	positive	delivery.timeliness:positive
se16-en_India'sGrill_477960693:3	positive	product.quality:positive
TSV
# the data set: the labelled records plus unlabelled zh test reviews (chosen by a hash of their
# ids) up to 150, with an NPS answer derived deterministically from the source's sentiment label
"$PY" - "$VERBATIM_DATA" "$WORK/labels.tsv" "$WORK/reviews.csv" <<'PY'
import csv, gzip, hashlib, json, sys
from pathlib import Path
data, wanted = Path(sys.argv[1]), [r["record_id"] for r in csv.DictReader(open(sys.argv[2], encoding="utf-8"), delimiter="\t")]
texts, filler = {}, []
def h(s): return int(hashlib.sha1(s.encode()).hexdigest(), 16)
for name, prefix in (("waimai_10k", "wm"), ("online_shopping_10_cats", "os")):
    for r in csv.DictReader(gzip.open(data / "zh" / f"{name}.csv.gz", "rt", encoding="utf-8")):
        rid = f"{prefix}-{r['id']}"
        if r["split"] not in ("test", "dev"):
            continue
        texts[rid] = ("zh", r["review"], int(r["label"]))
        if r["split"] == "test" and 8 <= len(r["review"]) <= 120:
            filler.append(rid)
for line in gzip.open(data / "en" / "semeval2016_restaurants.jsonl.gz", "rt", encoding="utf-8"):
    r = json.loads(line)
    if r["split"] == "test":
        pols = [c["polarity"] for c in r.get("aspect_categories") or []]
        texts[f"se16-{r['id']}"] = ("en", r["text"], int("negative" not in pols))
for i, line in enumerate(gzip.open(data / "en" / "mams_acsa.jsonl.gz", "rt", encoding="utf-8")):
    r = json.loads(line)
    if r["split"] == "test":
        texts[f"mams-{i}"] = ("en", r["text"], int("negative" not in [c["polarity"] for c in r["aspect_categories"]]))
missing = [w for w in wanted if w not in texts]
assert not missing, f"not in the test/dev splits of {data}: {missing}"
rows = list(dict.fromkeys(wanted + sorted((f for f in filler if f not in wanted), key=h)))[:150]
with open(sys.argv[3], "w", encoding="utf-8", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["id", "text", "lang", "nps", "source"])
    for rid in rows:
        lang, text, positive = texts[rid]
        nps = 7 + h(rid) % 4 if positive else h(rid) % 7  # promoters and passives / detractors
        out.writerow([rid, text, lang, nps, rid.split("-", 1)[0]])
print(f"{len(rows)} records ({sum(texts[r][0] == 'zh' for r in rows)} zh) -> {sys.argv[3]}")
PY
show "POST /v1/datasets -F file=@reviews.csv -F name=..."
vb POST /v1/datasets -F "file=@$WORK/reviews.csv" -F 'name=外卖与网购评价 walkthrough' |
  jq -c '{dataset: .dataset | {id, status}, job: .job | {id, state}}'
DS=$(jq -r .dataset.id "$WORK/body.json")
JOB=$(jq -r .job.id "$WORK/body.json")
started=$(date +%s)
until [[ $(vb GET "/v1/jobs/$JOB" 2>/dev/null | jq -r .state) =~ ^(succeeded|failed|cancelled)$ ]]; do sleep 3; done
jq -c '{state, counts, error}' "$WORK/body.json"
echo "import took $(($(date +%s) - started)) s"
show "GET /v1/review-queue?dataset_id=$DS&limit=6"
vb GET "/v1/review-queue?dataset_id=$DS&limit=6" | jq '{candidates, prior, weights, items: [.items[] | {record_id, lang,
    text: (if (.text | length) > 40 then .text[:40] + "…" else .text end), score, reasons: [.reasons[] | "\(.kind) \(.score): \(.detail)"],
    model_topics: [.prediction.topics[]?.id], prior_topics: [.prior_topics[]?.id]}]}'

# ---- 6. labels ----------------------------------------------------------------------------------
step "6. Import the analyst's labels from a CSV (two rows deliberately bad)"
{
  echo "dataset_id,record_id,sentiment,topics,touchpoints"
  tail -n +2 "$WORK/labels.tsv" | while IFS=$'\t' read -r rid sentiment topics touchpoints; do
    printf '%s,"%s",%s,"%s","%s"\n' "$DS" "$rid" "$sentiment" "$topics" "$touchpoints"
  done
  echo "$DS,wm-10279,negative,product.allergy:negative,use"      # a typo'd topic id
  echo "$DS,wm-10193,furious,product.quality:negative,use"       # not a sentiment
} >"$WORK/labels.csv"
echo "$(($(wc -l <"$WORK/labels.csv") - 1)) rows in $WORK/labels.csv"
show "POST /v1/labels/import -F file=@labels.csv"
vb POST /v1/labels/import -F "file=@$WORK/labels.csv" | jq '{counts, rejected}'
show "GET /v1/labels/export (JSON Lines, the training label set)"
vb GET /v1/labels/export >"$WORK/labels-export.jsonl"
echo "$(wc -l <"$WORK/labels-export.jsonl") labels; by topic:"
jq -r '.topics // {} | keys[]' "$WORK/labels-export.jsonl" | sort | uniq -c | sort -rn | head -20
show "verbatim labels export --tenant $VB_TENANT -o labels-cli.jsonl"
"$VERBATIM" labels export --tenant "$VB_TENANT" -o "$WORK/labels-cli.jsonl" 2>&1 | tail -n 2 || true
show "GET /v1/review-queue?dataset_id=$DS&limit=3 (labelled records are left out now)"
vb GET "/v1/review-queue?dataset_id=$DS&limit=3" | jq -c '{candidates, labelled_excluded}'

# ---- 7. a training run --------------------------------------------------------------------------
step "7. Train: POST /v1/training-runs, poll to the end"
show "POST /v1/training-runs {\"steps\": $VB_TRAIN_STEPS}"
vb POST /v1/training-runs -H 'Content-Type: application/json' -d "{\"steps\": $VB_TRAIN_STEPS}" |
  jq -c '{id, status, version, taxonomy, params}'
RUN=$(jq -r .id "$WORK/body.json")
started=$(date +%s)
last=""
while :; do
  vb GET "/v1/training-runs/$RUN" 2>/dev/null >/dev/null
  line=$(jq -r '"\(.status) \(.progress) \(.result.stage // "")"' "$WORK/body.json")
  [[ $line != "$last" ]] && echo "+$(($(date +%s) - started))s $line" && last=$line
  [[ $(jq -r .status "$WORK/body.json") =~ ^(succeeded|failed|cancelled)$ ]] && break
  sleep 10
done
TRAIN_S=$(($(date +%s) - started))
jq '{status, error, result}' "$WORK/body.json"
echo "training run: $TRAIN_S s wall ($(minutes "$TRAIN_S") min)"
VERSION=$(jq -r .version "$WORK/body.json")

# ---- 8. the new version: metrics, guard, promotion ----------------------------------------------
step "8. The new version: held-out metrics per node, the guard, promotion"
show "GET /v1/models/$VERSION"
vb GET "/v1/models/$VERSION" | tee "$WORK/model-version.json" | jq '. as $m | {version, model, status, lineage, taxonomy,
  data: (.data | del(.heldout_ids)),
  guard: (.guard | {allowed, reasons, against, against_model, min_support, macro_nodes, low_support,
    macro_candidate, macro_promoted}),
  macro_f1: {candidate: .metrics.candidate.macro_f1, promoted: .metrics.promoted.macro_f1},
  per_node: [.metrics.candidate.per_node | to_entries[] | select(.value.support > 0) |
    {node: .key, support: .value.support, predicted: .value.predicted, f1: .value.f1,
     promoted_f1: $m.metrics.promoted.per_node[.key].f1}]}'
show "POST /v1/models/$VERSION/promote"
vb POST "/v1/models/$VERSION/promote" | jq .
if [[ $(status) == 409 ]]; then  # refused by the guard: promote anyway, saying why (audited)
  reason="product.safety is needed now (allergy complaints are P1); guard: $(jq -r '.error.details.reasons | join("; ")' "$WORK/body.json")"
  show "POST /v1/models/$VERSION/promote {\"force\": true, \"reason\": \"…\"}"
  vb POST "/v1/models/$VERSION/promote" -H 'Content-Type: application/json' \
    -d "$(jq -nc --arg r "$reason" '{force: true, reason: $r}')" | jq .
fi
show "GET /v1/models"
vb GET /v1/models | jq -c '{default_model, promoted, serving, serving_base, rollback_to, versions: [.items[] | {version, status}]}'

# ---- 9. classify after ---------------------------------------------------------------------------
step "9. Classify the allergy complaints again: the new version answers, product.safety is trained (no zero_shot flag)"
show "POST /v1/classify"
classify

# what the tenant's served model does with product.safety on the held-out labels (the run's own
# split, GET /v1/models/{version} data.heldout_ids) and on the data set's unlabelled records
"$PY" - "$WORK/model-version.json" "$WORK/labels-export.jsonl" "$WORK/reviews.csv" "$WORK/safety-check.json" <<'PY'
import csv, json, sys
held = set(json.load(open(sys.argv[1]))["data"].get("heldout_ids") or [])
labels = [json.loads(line) for line in open(sys.argv[2], encoding="utf-8")]
labelled = {x["id"].split("/", 1)[1] for x in labels}
items = [{"id": "held:" + x["id"], "text": x["text"], "lang": x["lang"],
          "gold": "product.safety" in (x.get("topics") or {})} for x in labels if x["id"] in held]
items += [{"id": "unlabelled:" + r["id"], "text": r["text"], "lang": r["lang"]}
          for r in csv.DictReader(open(sys.argv[3], encoding="utf-8")) if r["id"] not in labelled]
json.dump(items, open(sys.argv[4], "w", encoding="utf-8"), ensure_ascii=False)
PY
safety_check() {  # safety_check N: the counts, and the first N unlabelled texts given product.safety
  vb POST /v1/classify -H 'Content-Type: application/json' 2>/dev/null \
    -d "$(jq -c '{items: [.[] | {id, text, lang}]}' "$WORK/safety-check.json")" >"$WORK/safety-result.json"
  jq -r --argjson n "$1" --slurpfile items "$WORK/safety-check.json" '
    ($items[0] | map({key: .id, value: .}) | from_entries) as $in | .model as $model
    | [.results[] | {id, text: $in[.id].text, gold: $in[.id].gold,
        hit: any(.topics[]; .id == "product.safety"), zero_shot: any(.topics[]; .id == "product.safety" and .zero_shot)}] as $r
    | ($r | map(select(.id | startswith("held:")))) as $h | ($r | map(select(.id | startswith("unlabelled:")))) as $u
    | ($h | map(select(.gold)) | length) as $s | ($h | map(select(.hit)) | length) as $p | ($h | map(select(.gold and .hit)) | length) as $tp
    | "\($model): product.safety on the \($h | length) held-out labels: \($s) labelled, \($p) predicted, \($tp) right (F1 \(if $s + $p > 0 then (2 * $tp / ($s + $p) * 1000 | round / 1000) else 0 end));",
      "  on the \($u | length) unlabelled records: \($u | map(select(.hit)) | length) predicted (\($u | map(select(.zero_shot)) | length) marked zero_shot), e.g.:",
      ($u | map(select(.hit)) | .[:$n][] | "    \(.id | ltrimstr("unlabelled:"))  \(if (.text | length) > 40 then .text[:40] + "…" else .text end)")
    ' "$WORK/safety-result.json"
}
show "POST /v1/classify (the held-out label texts and the unlabelled records of the data set)"
safety_check 8

# ---- 10. roll back --------------------------------------------------------------------------------
step "10. Roll back, and the audit trail"
show "POST /v1/models/rollback"
vb POST /v1/models/rollback -H 'Content-Type: application/json' \
  -d '{"reason": "walkthrough: back to the default model"}' | jq -c .
show "GET /v1/models/events"
vb GET /v1/models/events | jq -c '.[] | {at, action, version, previous_version, forced, reason, actor: .actor.name}'
show "POST /v1/classify (the default model again, derived for taxonomy version 2: product.safety zero-shot)"
vb POST /v1/classify -H 'Content-Type: application/json' -d "$ALLERGY" |
  jq -c '{model, topics: [.results[] | [.topics[] | .id + (if .zero_shot then " (zero_shot)" else "" end)]]}'
show "POST /v1/classify (the same held-out and unlabelled texts, zero-shot: what the training run changed)"
safety_check 0
