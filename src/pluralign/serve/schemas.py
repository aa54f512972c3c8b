"""The HTTP shapes (issue 13's contract; extend, do not rename). Inputs forbid unknown fields
and never coerce types, so a typo or a number where text belongs is a 422 naming the field."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TEXT = 20_000  # characters of one prompt or response
MAX_CANDIDATES = 4096
MAX_POOL = 2000
USER_ID = r"^[A-Za-z0-9._:@-]{1,128}$"
POOL_ID = r"^[A-Za-z0-9._-]{1,128}$"

Text = Field(max_length=MAX_TEXT)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChoiceIn(In):
    prompt: str = Field("", max_length=MAX_TEXT, description="The question (may be empty).")
    chosen: str = Field(min_length=1, max_length=MAX_TEXT, description="The answer the person preferred.")
    rejected: str = Field(min_length=1, max_length=MAX_TEXT, description="The answer they did not.")

    @model_validator(mode="after")
    def _distinct(self) -> "ChoiceIn":
        if self.chosen == self.rejected:
            raise ValueError("chosen and rejected are the same text; a choice needs two different answers")
        return self


class ChoiceOut(BaseModel):
    seq: int
    prompt: str
    chosen: str
    rejected: str
    created_at: datetime
    undone: bool = False


class ChoiceCreated(BaseModel):
    user_id: str
    choice: ChoiceOut
    n_choices: int
    replayed: bool = Field(description="True when the Idempotency-Key was seen before: nothing was added.")


class ChoiceList(BaseModel):
    user_id: str
    n_choices: int
    choices: list[ChoiceOut]


class Undone(BaseModel):
    user_id: str
    undone: ChoiceOut
    n_choices: int


class UserOut(BaseModel):
    user_id: str
    n_choices: int
    revision: int


class Deleted(BaseModel):
    user_id: str
    deleted_choices: int


class RankIn(In):
    prompt: str = Field("", max_length=MAX_TEXT)
    candidates: list[str] = Field(min_length=1, max_length=MAX_CANDIDATES)

    @model_validator(mode="after")
    def _sizes(self) -> "RankIn":
        for i, c in enumerate(self.candidates):
            if len(c) > MAX_TEXT:
                raise ValueError(f"candidates[{i}] has {len(c)} characters; at most {MAX_TEXT}")
        return self


class RankedOut(BaseModel):
    index: int
    candidate: str
    score: float
    spread: float | None = None


class RankOut(BaseModel):
    user_id: str
    n_choices: int
    model: str
    ranking: list[RankedOut]


class QuestionItem(In):
    prompt: str = Field("", max_length=MAX_TEXT)
    a: str = Field(min_length=1, max_length=MAX_TEXT)
    b: str = Field(min_length=1, max_length=MAX_TEXT)


class NextQuestionIn(In):
    pool: list[QuestionItem] | None = Field(None, min_length=1, max_length=MAX_POOL)
    pool_id: str | None = Field(None, pattern=POOL_ID)

    @model_validator(mode="after")
    def _one(self) -> "NextQuestionIn":
        if (self.pool is None) == (self.pool_id is None):
            raise ValueError("give exactly one of 'pool' (a list of {prompt, a, b}) or 'pool_id'")
        return self


class QuestionOut(BaseModel):
    user_id: str
    done: bool = Field(description="True when every pair in the pool has been answered.")
    index: int | None = None
    prompt: str | None = None
    a: str | None = None
    b: str | None = None
    method: str | None = Field(None, description="'active' (Personalizer.next_question) or 'random'.")


class Candidates(In):
    prompt: str = Field("", max_length=MAX_TEXT)
    responses: list[str] = Field(min_length=1, max_length=200)


class PoolIn(In):
    questions: list[QuestionItem] = Field(min_length=1, max_length=MAX_POOL)
    candidates: Candidates | None = Field(None, description="Answers the web page re-ranks.")


class PoolOut(BaseModel):
    pool_id: str
    questions: list[QuestionItem]
    candidates: Candidates | None = None


class Personalized(BaseModel):
    user_id: str
    n_choices: int
    revision: int
    model: str
    z: list[float]
    z_std: list[float] | None = None
