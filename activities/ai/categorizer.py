"""Categorization in tiers: the customer's own corrections (merchant memory), the keyword
rules, the small trained model, then the LLM. Each answer has a confidence and a source.

The model is a scikit-learn pipeline (character n-gram TF-IDF + logistic regression) over
merchant, description, kind and direction, trained on the categorized history. It is stored
in PostgreSQL with an HMAC of its bytes under a key derived from the platform's secret: only a
blob this platform signed is ever unpickled. It is used only when its held-out accuracy beat
the rules alone on the same rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import pickle  # only blobs with our own HMAC are loaded (see `_load`)
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from activities.ai.patterns import merchant_key
from activities.categorize import CATEGORIES, categorize
from core.crypto import derive_key
from core.db import SessionFactory, transaction
from core.settings import Settings
from models.ai.payloads import TrainingResult
from models.ai.tables import CategorizerModel, MerchantMemory
from models.base import utcnow
from models.ledger.tables import Transaction

ALGORITHM = "tfidf-char-2-4+logreg"
RULE_CONFIDENCE = 0.9
HOLDOUT_PERCENT = 20


@dataclass(frozen=True)
class Categorized:
    """A category with its confidence (0..1) and the tier that chose it."""

    category: str
    confidence: float
    source: str  # memory | rules | model | llm | default
    model_version: int | None = None


def features(
    merchant: str | None, description: str | None, kind: str | None, direction: str | None
) -> str:
    """The text the model reads."""
    return (
        f"{merchant or ''} | {description or ''} | kind:{kind or ''} dir:{direction or ''}".lower()
    )


def rules_hit(
    merchant: str | None, description: str | None, kind: str | None, direction: str | None
) -> str | None:
    """The rules' category when a rule matched (not their fallback)."""
    category = categorize(merchant, description, kind=kind, direction=direction)
    fallback = categorize(None, None, kind=kind, direction=direction)
    if category != fallback or kind in ("transfer", "sweep", "cash"):
        return category
    return None


def _signing_key(settings: Settings) -> bytes:
    return derive_key(settings.secret_key.get_secret_value(), "vortex/ai/categorizer-model")


def _sign(settings: Settings, blob: bytes) -> str:
    return hmac.new(_signing_key(settings), blob, hashlib.sha256).hexdigest()


_cache: dict[int, Any] = {}


def _load(settings: Settings, row: CategorizerModel) -> Any:
    """The pipeline in a row, only if its HMAC is ours (never unpickle foreign bytes)."""
    if row.version in _cache:
        return _cache[row.version]
    if not hmac.compare_digest(_sign(settings, row.blob), row.signature):
        raise ValueError(f"categorizer model {row.version} has a bad signature; not loaded")
    model = pickle.loads(row.blob)  # noqa: S301  # signed by this platform (checked above)
    _cache[row.version] = model
    return model


async def active_model(session: AsyncSession) -> CategorizerModel | None:
    """The newest model that beat the rules."""
    found: CategorizerModel | None = (
        await session.execute(
            select(CategorizerModel)
            .where(col(CategorizerModel.active))
            .order_by(col(CategorizerModel.version).desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return found


async def remember_correction(
    session: AsyncSession,
    user_id: uuid.UUID,
    merchant: str | None,
    description: str | None,
    category: str,
) -> None:
    """Learn a customer's correction: this merchant is this category for them."""
    key = merchant_key(merchant, description)
    if not key:
        return
    stmt = insert(MerchantMemory).values(
        user_id=user_id, merchant_key=key, category=category, corrections=1, updated_at=utcnow()
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "merchant_key"],
            set_={
                "category": category,
                "corrections": MerchantMemory.__table__.c.corrections + 1,  # type: ignore[attr-defined]
                "updated_at": utcnow(),
            },
        )
    )


async def categorize_one(
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    *,
    merchant: str | None,
    description: str | None,
    kind: str | None = None,
    direction: str | None = None,
) -> Categorized:
    """Memory, rules, model; None of them sure: the caller may ask the LLM, else 'other'."""
    key = merchant_key(merchant, description)
    if key:
        memory = await session.get(MerchantMemory, (user_id, key))
        if memory is not None:
            return Categorized(
                memory.category, min(0.99, 0.9 + 0.03 * memory.corrections), "memory"
            )
    hit = rules_hit(merchant, description, kind, direction)
    if hit is not None:
        return Categorized(hit, RULE_CONFIDENCE, "rules")
    row = await active_model(session)
    if row is not None:
        model = _load(settings, row)
        probs = model.predict_proba([features(merchant, description, kind, direction)])[0]
        best = int(probs.argmax())
        confidence = float(probs[best])
        if confidence >= settings.ai_model_min_confidence:
            return Categorized(
                str(model.classes_[best]), round(confidence, 3), "model", row.version
            )
    fallback = categorize(merchant, description, kind=kind, direction=direction)
    return Categorized(fallback, 0.3, "default")


def _holdout(transaction_id: uuid.UUID) -> bool:
    """A stable split: the same rows are held out on every run."""
    return transaction_id.int % 100 < HOLDOUT_PERCENT


def _fit(train: list[tuple[str, str]]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=1, sublinear_tf=True),
        LogisticRegression(max_iter=500, C=10.0),
    )
    pipeline.fit([x for x, _ in train], [y for _, y in train])
    return pipeline


def _train(rows: list[Transaction]) -> tuple[Any, int, int, float, float] | None:
    """(pipeline, train rows, holdout rows, accuracy, rules accuracy), or None if too few."""
    train = [
        (features(t.merchant, t.description, t.kind, t.direction), t.category or "")
        for t in rows
        if not _holdout(t.id)
    ]
    held = [t for t in rows if _holdout(t.id)]
    if not held or len({y for _, y in train}) < 2:
        return None
    model = _fit(train)
    predicted = model.predict(
        [features(t.merchant, t.description, t.kind, t.direction) for t in held]
    )
    accuracy = sum(p == t.category for p, t in zip(predicted, held, strict=True)) / len(held)
    rules = sum(
        categorize(t.merchant, t.description, kind=t.kind, direction=t.direction) == t.category
        for t in held
    ) / len(held)
    return model, len(train), len(held), accuracy, rules


async def train_and_store(
    sessions: SessionFactory, settings: Settings, *, min_rows: int, max_rows: int
) -> TrainingResult:
    """Train on the newest categorized rows, store the version, activate it if it beat rules."""
    async with sessions() as session:
        rows = list(
            (
                await session.execute(
                    select(Transaction)
                    .where(
                        col(Transaction.category).is_not(None),
                        col(Transaction.category).in_(sorted(CATEGORIES)),
                        col(Transaction.kind).notin_(["transfer", "sweep"]),
                    )
                    .order_by(col(Transaction.created_at).desc())
                    .limit(max_rows)
                )
            ).scalars()
        )
    if len(rows) < min_rows:
        return TrainingResult(
            version=None,
            training_rows=len(rows),
            holdout_rows=0,
            accuracy=None,
            rules_accuracy=None,
            active=False,
            reason=f"only {len(rows)} categorized rows",
        )
    trained = await asyncio.to_thread(_train, rows)  # CPU work off the event loop
    if trained is None:
        return TrainingResult(
            version=None,
            training_rows=len(rows),
            holdout_rows=0,
            accuracy=None,
            rules_accuracy=None,
            active=False,
            reason="too few categories or held-out rows",
        )
    model, n_train, n_held, accuracy, rules = trained
    buffer = io.BytesIO()
    pickle.dump(model, buffer)
    blob = buffer.getvalue()
    beats = accuracy > rules
    async with transaction(sessions) as session:
        version = (
            int(
                await session.scalar(
                    select(func.coalesce(func.max(col(CategorizerModel.version)), 0))
                )
                or 0
            )
            + 1
        )
        if beats:
            await session.execute(update(CategorizerModel).values(active=False))
        session.add(
            CategorizerModel(
                version=version,
                algorithm=ALGORITHM,
                blob=blob,
                signature=_sign(settings, blob),
                training_rows=n_train,
                holdout_rows=n_held,
                accuracy=accuracy,
                rules_accuracy=rules,
                active=beats,
            )
        )
    return TrainingResult(
        version=version,
        training_rows=n_train,
        holdout_rows=n_held,
        accuracy=round(accuracy, 4),
        rules_accuracy=round(rules, 4),
        active=beats,
        reason="beats the rules" if beats else "does not beat the rules; not used",
    )
