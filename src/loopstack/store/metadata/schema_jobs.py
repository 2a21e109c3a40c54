"""The async inference job queue's table, on the one ``Base`` (see ``serving.jobs``).

Times are epoch milliseconds; ``payload``, ``result`` and ``callback`` are ``Text``
holding JSON.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from loopstack.store.metadata.schema import Base

__all__ = ["InferenceJobRow"]


class InferenceJobRow(Base):
    """One async inference job: the request, its lease, tries, result or last error."""

    __tablename__ = "inference_jobs"
    __table_args__ = (
        Index("ix_inference_jobs_status_created", "status", "created_at"),
        Index("ix_inference_jobs_expires", "expires_at"),
        Index("ux_inference_jobs_idempotency", "endpoint", "idempotency_key", unique=True),
    )
    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(256))
    #: queued, running, succeeded, failed
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    max_tries: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str | None] = mapped_column(String(256), nullable=True)
    lease_expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback: Mapped[str | None] = mapped_column(Text, nullable=True)
