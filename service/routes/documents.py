"""What the routes of a versioned YAML document (taxonomies, triage policies) share.

Each resource keeps its own router (its paths, scopes, parameters and documentation are its API);
the work behind each route is here, parameterised by a :class:`DocumentRoutes`: reading a YAML or
JSON upload, finding the caller's document, answering JSON or YAML, saving a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import HTTPException, Query, Request, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from nlp.errors import InvalidInputError, NotFoundError
from service.documents import DocumentStore, Saved
from service.storage.keys import Principal

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
"""Content types read as a YAML body."""

Format = Annotated[
    Literal["json", "yaml"], Query(description="`yaml`: the version's YAML as `text/yaml`.")
]
Message = Annotated[
    str | None,
    Query(max_length=2000, description="With a YAML body: what this version changes."),
]

FromVersion = Annotated[
    int | None, Query(alias="from", ge=1, description="Old version (default: to - 1).")
]
ToVersion = Annotated[
    int | None, Query(ge=1, description="New version (default: the current one).")
]


@dataclass(frozen=True, kw_only=True)
class Upload:
    """A create or update body: YAML text, or a copy of the default (under ``key``)."""

    yaml: str | None
    from_default: bool = False
    key: str | None = None
    message: str | None = None


@dataclass(frozen=True, kw_only=True)
class DocumentRoutes:
    """The routes of one document kind: its store, the words its messages use (``noun``: "triage
    policy"; ``short``: "policy"), the JSON body model and the response models (``out.build``,
    ``version_out.of``)."""

    store: DocumentStore[Any]
    prefix: str
    """The collection's URL, e.g. ``/v1/taxonomies``."""
    noun: str
    short: str
    bad_id: str
    """The 404 for an id no document can have; ``ref`` is the id, cut to 80 characters."""
    example_id: str
    max_bytes: int
    create_model: type[BaseModel]
    out: Any
    version_out: Any

    # ----- the upload (a dependency) --------------------------------------------------------------
    async def read_upload(self, request: Request, message: Message = None) -> Upload:
        """The body as YAML text (a YAML content type) or JSON ``{"yaml": …}`` / ``{"from": …}``."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if len(body) > self.max_bytes:
            raise HTTPException(413, f"A {self.noun} is at most {self.max_bytes:,} bytes of YAML.")
        if media in YAML_TYPES:
            return Upload(yaml=self._text(body), message=message)
        if media == "application/json" or media.endswith("+json"):
            try:
                doc: Any = self.create_model.model_validate_json(body)
            except ValidationError as exc:
                details = [
                    {"location": ".".join(map(str, e["loc"])) or "body", "message": e["msg"]}
                    for e in exc.errors()
                ]
                raise InvalidInputError(
                    f'The JSON body is not valid: expected {{"yaml": "<the {self.short} as YAML>"}} '
                    f'or {{"from": "default", "id": "{self.example_id}"}}.',
                    details=details,
                ) from None
            if (doc.yaml is None) == (doc.from_ is None):
                raise InvalidInputError('Give exactly one of "yaml" and "from" in the JSON body.')
            if doc.id is not None and doc.from_ is None:
                raise InvalidInputError(
                    '"id" goes with "from"; with "yaml" the id is the YAML\'s own.'
                )
            return Upload(
                yaml=doc.yaml,
                from_default=doc.from_ == "default",
                key=doc.id,
                message=doc.message or message,
            )
        raise HTTPException(
            415,
            f"Send the {self.short} as YAML (Content-Type: application/yaml) or as JSON "
            f'{{"yaml": …}} (Content-Type: application/json); got {media or "no Content-Type"!r}.',
        )

    def _text(self, body: bytes) -> str:
        try:
            return body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"The {self.short} is not UTF-8 text (byte {exc.start}); save the YAML as UTF-8."
            ) from None

    # ----- the work behind the routes -------------------------------------------------------------
    def resolve(self, session: Session, principal: Principal, doc_id: str, **kw: Any) -> Any:
        """The caller's document by server id or key, else 404 (also for ids none can have)."""
        if not (0 < len(doc_id) <= 80 and doc_id.isprintable()):
            raise NotFoundError(self.bad_id.format(ref=doc_id[:80]))
        return self.store.get(session, principal.tenant_id, doc_id, **kw)

    def create(
        self, response: Response, principal: Principal, session: Session, upload: Upload
    ) -> dict[str, Any]:
        """Version 1 from the upload (or a copy of the default); sets ``Location``."""
        source = None if upload.from_default else (upload.yaml or "")
        saved = self.store.create(
            session,
            principal.tenant_id,
            source,
            key=upload.key,
            created_by=principal.key_id,
            message=upload.message,
        )
        body = self.saved_body(saved)
        session.commit()
        response.headers["Location"] = f"{self.prefix}/{saved.row.id}"
        return body

    def update(
        self,
        session: Session,
        principal: Principal,
        doc_id: str,
        upload: Upload,
        *,
        if_match: str | None = None,
        for_update: bool = False,
    ) -> dict[str, Any]:
        """Version current + 1 from a whole document. ``if_match`` is the ``If-Match`` header: the
        version the change was made from. ``for_update`` locks the row first, so concurrent saves
        queue up rather than fail."""
        if upload.from_default or upload.yaml is None:
            raise InvalidInputError(
                f'PUT takes the whole {self.short}: a YAML body or JSON {{"yaml": …}}.'
            )
        row = self.resolve(session, principal, doc_id, for_update=for_update)
        saved = self.store.add_version(
            session,
            row,
            upload.yaml,
            base_version=base_version(if_match),
            created_by=principal.key_id,
            message=upload.message,
        )
        body = self.saved_body(saved)
        session.commit()
        return body

    def read(
        self, session: Session, principal: Principal, doc_id: str, version: int | None, format: str
    ) -> Any:
        """Version ``version`` (None: the current one) as JSON, or as YAML."""
        row = self.resolve(session, principal, doc_id)
        found = self.store.get_version(
            session, row, row.current_version if version is None else version
        )
        if format == "yaml":
            return yaml_response(found.yaml, f"{row.key}.v{found.version}.yaml")
        return self.out.build(row, found, self.store.read(found))

    def versions(self, session: Session, principal: Principal, doc_id: str) -> list[Any]:
        """Every version, newest first."""
        row = self.resolve(session, principal, doc_id)
        return [self.version_out.of(row, v) for v in self.store.list_versions(session, row)]

    def diff(
        self,
        session: Session,
        principal: Principal,
        doc_id: str,
        old: int | None,
        new: int | None,
    ) -> dict[str, Any]:
        """The diff from ``old`` (default: ``new`` - 1) to ``new`` (default: the current one)."""
        row = self.resolve(session, principal, doc_id)
        new = new if new is not None else row.current_version
        old = old if old is not None else max(new - 1, 1)
        return self.store.diff_versions(session, row, old, new)

    def saved_body(self, saved: Saved) -> dict[str, Any]:
        """The saved document in full, with ``created`` and the upload's ``warnings``."""
        out = self.out.build(saved.row, saved.version, self.store.read(saved.version))
        return {
            **out.model_dump(),
            "created": saved.created,
            "warnings": [p.as_dict() for p in saved.warnings],
        }


def base_version(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"3"``, ``W/"3"``, ``3``), or None without one."""
    if if_match is None:
        return None
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise InvalidInputError(
            f'If-Match is the version you edited, e.g. "3"; got {if_match[:40]!r}.'
        )
    return int(raw)


def yaml_response(text: str, filename: str) -> Response:
    """``text`` as ``text/yaml``, shown inline under ``filename``."""
    return Response(
        text,
        media_type="text/yaml; charset=utf-8",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


# ----- OpenAPI documentation ----------------------------------------------------------------------
def not_found_doc(noun: str) -> dict[int | str, dict[str, Any]]:
    """The 404 of the routes that name a document."""
    return {404: {"description": f"No such {noun} (or version) for this API key's tenant"}}


def invalid_doc(example: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The 422 of an invalid upload, with an example."""
    return {
        422: {
            "description": "The YAML is invalid: `details` lists every problem with its path and line",
            "content": {"application/json": {"example": example}},
        }
    }


def body_doc(
    create_model: type[BaseModel],
    json_examples: dict[str, Any],
    yaml_examples: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body of a create or update: YAML text, or the JSON ``create_model``."""
    yaml_doc: dict[str, Any] = {"schema": {"type": "string"}}
    if yaml_examples is not None:
        yaml_doc["examples"] = yaml_examples
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": yaml_doc,
                "application/json": {
                    "schema": create_model.model_json_schema(by_alias=True),
                    "examples": json_examples,
                },
            },
        }
    }
