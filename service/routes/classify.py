"""``POST /v1/classify``: sentiment, topics with evidence, touchpoints and triage for up to 256 verbatims.

What is refused, and how:

- The request's shape (unknown fields, wrong types, no items, more than ``max_items`` items, an
  empty or whitespace-only text, a text over ``max_text_chars`` characters, duplicate ids, text that
  is not valid Unicode): 422 for the whole request, ``details`` naming each bad item's path
  (``body.items.3.text``) so a caller can fix them all at once.
- A text that is well formed but that the model cannot classify (for instance nothing is left of it
  after cleaning): that item's result is ``{"id": ..., "error": {"code", "message"}}`` in its place,
  and the other items are classified as usual.
- A body that is not JSON: 415 for another content type, 422 for malformed JSON; over
  ``max_body_bytes``: 413.
- Over the key's rate limit (one token per item): 429 with ``Retry-After``.
- While the model loads, or when the queue is full: 503 with ``Retry-After``.
"""

from __future__ import annotations

import email.message
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nlp.errors import UnavailableError, VerbatimError
from service.deps import BatcherDep, ClassifyPrincipal, RateLimiterDep, SessionDep, SettingsDep
from service.settings import Settings
from service.tenant_models import TenantModels, get_tenant_models
from service.triage_policies import triage_for_tenant

router = APIRouter(prefix="/v1", tags=["classify"])


def tenant_models_dep(request: Request) -> TenantModels:
    """The app's per-tenant model routing (:mod:`service.tenant_models`)."""
    return get_tenant_models(request.app.state)


TenantModelsDep = Annotated[TenantModels, Depends(tenant_models_dep)]

Label = Literal["negative", "neutral", "positive"]

# ---- request --------------------------------------------------------------------------------


def _valid_unicode(value: str, what: str) -> str:
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError(f"{what} holds a lone UTF-16 surrogate (a broken \\uD800-\\uDFFF escape); send valid Unicode")
    return value


class ClassifyItemIn(BaseModel):
    """One verbatim to classify."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256, description="Your id for the verbatim, unique within the request; echoed in its result.")
    text: str = Field(description="The verbatim: 1 to 10,000 characters after trimming (VERBATIM_MAX_TEXT_CHARS).")
    lang: Literal["zh", "en"] | None = Field(default=None, description="`zh` or `en`; detected when absent.")

    @field_validator("id")
    @classmethod
    def _id_is_unicode(cls, value: str) -> str:
        return _valid_unicode(value, "id")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or only whitespace; send 1 to 10,000 characters of feedback")
        return _valid_unicode(value, "text")


class ClassifyRequest(BaseModel):
    """Up to 256 verbatims (VERBATIM_MAX_ITEMS) with unique ids."""

    model_config = ConfigDict(extra="forbid")

    items: list[ClassifyItemIn] = Field(min_length=1, description="1 to 256 items (VERBATIM_MAX_ITEMS).")


# ---- response -------------------------------------------------------------------------------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # the contract may be extended; extra fields pass through


class Sentiment(_Open):
    label: Label
    score: float = Field(ge=-1, le=1, description="Negative to positive, in [-1, 1].")
    confidence: float = Field(ge=0, le=1)


class Evidence(BaseModel):
    start: int = Field(ge=0, description="Python string index into the original text.")
    end: int = Field(ge=0)
    text: str = Field(description="text[start:end]")


class Topic(_Open):
    id: str = Field(description="A topic id of the taxonomy in use.")
    polarity: Label
    confidence: float = Field(ge=0, le=1)
    evidence: Evidence | None = None


class Touchpoint(_Open):
    id: str = Field(description="A touchpoint id of the taxonomy in use.")
    confidence: float = Field(ge=0, le=1)


class Triage(_Open):
    priority: Literal["P1", "P2", "P3", "P4"] = Field(description="P1 is the most urgent.")
    reasons: list[str] = Field(description="Why, in words a support agent reads.")


class Classification(_Open):
    """The classification contract for one verbatim."""

    id: str
    lang: str
    sentiment: Sentiment
    topics: list[Topic]
    touchpoints: list[Touchpoint]
    primary_touchpoint: str | None
    triage: Triage
    model: str = Field(description="`verbatim-cem@<version>`: the model that produced this result.")


class ItemErrorDetail(BaseModel):
    code: str
    message: str


class ItemError(BaseModel):
    """An item the model could not classify; the request's other items are unaffected."""

    id: str
    error: ItemErrorDetail


class ClassifyResponse(BaseModel):
    results: list[Classification | ItemError] = Field(description="One per item, in request order.")
    model: str = Field(description="The model that served the request.")


class ErrorResponse(BaseModel):
    class _Body(BaseModel):
        code: str
        message: str
        details: Any = None

    error: _Body


# ---- examples -------------------------------------------------------------------------------

ZH_TEXT = "快递太慢了，等了一个星期才到，客服也不回复。"
EN_TEXT = "Checkout was quick, but the staff at the Leeds store were rude to my mother."

REQUEST_EXAMPLES = {
    "zh": {"summary": "A Chinese verbatim", "value": {"items": [{"id": "r1", "text": ZH_TEXT, "lang": "zh"}]}},
    "en": {"summary": "An English verbatim", "value": {"items": [{"id": "r2", "text": EN_TEXT}]}},
    "mixed": {
        "summary": "Both languages in one request",
        "value": {"items": [{"id": "r1", "text": ZH_TEXT}, {"id": "r2", "text": EN_TEXT}]},
    },
}
_MODEL = "verbatim-cem@1.0.0"


def _span(text: str, part: str) -> dict[str, Any]:
    start = text.index(part)
    return {"start": start, "end": start + len(part), "text": part}


_ZH_RESULT = {
    "id": "r1", "lang": "zh",
    "sentiment": {"label": "negative", "score": -0.86, "confidence": 0.91},
    "topics": [
        {"id": "delivery.timeliness", "polarity": "negative", "confidence": 0.93, "evidence": _span(ZH_TEXT, "快递太慢了")},
        {"id": "service.responsiveness", "polarity": "negative", "confidence": 0.81, "evidence": _span(ZH_TEXT, "客服也不回复")},
    ],
    "touchpoints": [{"id": "fulfil", "confidence": 0.9}, {"id": "support", "confidence": 0.74}],
    "primary_touchpoint": "fulfil",
    "triage": {"priority": "P2", "reasons": ["strong negative sentiment", "delivery.timeliness"]},
    "model": _MODEL,
}
_EN_RESULT = {
    "id": "r2", "lang": "en",
    "sentiment": {"label": "negative", "score": -0.42, "confidence": 0.77},
    "topics": [{"id": "service.attitude", "polarity": "negative", "confidence": 0.88, "evidence": _span(EN_TEXT, "the staff at the Leeds store were rude to my mother")}],
    "touchpoints": [{"id": "use", "confidence": 0.83}, {"id": "purchase", "confidence": 0.61}],
    "primary_touchpoint": "use",
    "triage": {"priority": "P3", "reasons": ["negative sentiment", "service.attitude"]},
    "model": _MODEL,
}
RESPONSE_EXAMPLES = {
    "zh": {"summary": "A Chinese verbatim", "value": {"results": [_ZH_RESULT], "model": _MODEL}},
    "en": {"summary": "An English verbatim", "value": {"results": [_EN_RESULT], "model": _MODEL}},
    "item_error": {
        "summary": "An item the model could not classify",
        "value": {"results": [_ZH_RESULT, {"id": "r3", "error": {"code": "invalid_input", "message": "Nothing is left of the text after cleaning (it held only markup or symbols)."}}], "model": _MODEL},
    },
}


def _error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"examples": RESPONSE_EXAMPLES}}},
    401: _error_doc("No API key, or an unknown or revoked one"),
    403: _error_doc("The key lacks the `classify` scope"),
    413: _error_doc("The body is over VERBATIM_MAX_BODY_BYTES"),
    415: _error_doc("The body is not JSON"),
    422: _error_doc("The request breaks a rule; `details` names each bad item path"),
    429: _error_doc("Over the key's rate limit; see `Retry-After`"),
    503: _error_doc("The model is loading or the queue is full; see `Retry-After`"),
}

# ---- the route ------------------------------------------------------------------------------


def require_json(request: Request) -> None:
    """415 unless the body is declared as JSON (``application/json`` or ``application/*+json``)."""
    value = request.headers.get("content-type")
    if value:
        message = email.message.Message()
        message["content-type"] = value
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
            return
    raise HTTPException(
        status_code=415,
        detail=f"Expected a JSON body with 'Content-Type: application/json'; got {value or 'no content type'}.",
    )


def check_limits(body: ClassifyRequest, settings: Settings) -> None:
    """The configurable limits and unique ids, as one 422 listing every problem."""
    errors: list[dict[str, Any]] = []
    if len(body.items) > settings.max_items:
        errors.append({
            "loc": ("body", "items"), "type": "too_many_items",
            "msg": f"{len(body.items)} items sent; at most {settings.max_items} per request: split the batch",
        })
    first_at: dict[str, int] = {}
    for i, item in enumerate(body.items):
        chars = len(item.text.strip())
        if chars > settings.max_text_chars:
            errors.append({
                "loc": ("body", "items", i, "text"), "type": "text_too_long",
                "msg": f"text has {chars:,} characters after trimming; at most {settings.max_text_chars:,}",
            })
        if item.id in first_at:
            errors.append({
                "loc": ("body", "items", i, "id"), "type": "duplicate_id",
                "msg": f"duplicate id {item.id!r} (first at items[{first_at[item.id]}]); ids must be unique within a request",
            })
        else:
            first_at[item.id] = i
    if errors:
        raise RequestValidationError(errors)


def _unavailable(exc: UnavailableError) -> HTTPException:
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
    return HTTPException(status_code=503, detail=exc.message, headers=headers)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Classify up to 256 verbatims",
    description="Sentiment, topics with polarity and evidence, touchpoints and a triage priority "
    "for each item, in request order. Needs a key with the `classify` scope. Items from concurrent "
    "requests share model calls (micro-batching). A tenant that promoted a model of its own "
    "(`/v1/models`) is served by it; `model` in each result names the version that made it.",
    responses=RESPONSES,
)
async def classify(
    principal: ClassifyPrincipal,
    _json: Annotated[None, Depends(require_json)],
    body: Annotated[ClassifyRequest, Body(openapi_examples=REQUEST_EXAMPLES)],
    settings: SettingsDep,
    batcher: BatcherDep,
    limiter: RateLimiterDep,
    tenant_models: TenantModelsDep,
    session: SessionDep,
) -> dict[str, Any]:
    check_limits(body, settings)
    try:
        batcher.check_available(len(body.items))  # before charging the caller's rate limit
        # chosen once: a promotion while this request waits does not split it across models
        classifier = await tenant_models.classifier_async(principal.tenant_id)
    except UnavailableError as exc:
        raise _unavailable(exc) from exc
    limiter.charge(principal.key_id, len(body.items), unit="item")  # 429 when over
    try:
        items = [item.model_dump(exclude_none=True) for item in body.items]
        results = await batcher.classify(items, classifier)
        # the tenant's own triage policy, when it has one (issue 7); results name the version
        results = await triage_for_tenant(session, principal.tenant_id, results, [i.text for i in body.items], classifier=classifier)
        return {"results": results, "model": classifier.model_id}
    except UnavailableError as exc:
        raise _unavailable(exc) from exc
    except VerbatimError:
        raise
    except Exception as exc:  # a model crash: logged (without text) by the batcher
        raise HTTPException(
            status_code=500,
            detail="The model failed on this request; the X-Request-ID identifies it in the logs.",
        ) from exc
