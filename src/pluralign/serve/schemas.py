"""The HTTP shapes (issue 13's contract; extend, do not rename). Inputs forbid unknown fields
and never coerce types, so a typo or a number where text belongs is a 422 naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_TEXT = 20_000  # characters of one prompt or response
MAX_CANDIDATES = 4096
MAX_POOL = 2000
USER_ID = r"^[A-Za-z0-9._:@-]{1,128}$"
POOL_ID = r"^[A-Za-z0-9._-]{1,128}$"



def _no_nul(value: str) -> str:
    if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it everywhere alike
        raise ValueError("text must not contain NUL characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return _no_nul(value)


#: a prompt (may be empty) and an answer (must have content), both at most MAX_TEXT characters
Prompt = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_no_nul)]
Answer = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ChoiceIn(In):
    prompt: Prompt = Field("", description="The question (may be empty).")
    chosen: Answer = Field(description="The answer the person preferred.")
    rejected: Answer = Field(description="The answer they did not.")

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
    prompt: Prompt = ""
    candidates: list[Answer] = Field(min_length=1, max_length=MAX_CANDIDATES)


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
    prompt: Prompt = ""
    a: Answer
    b: Answer


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
    prompt: Prompt = ""
    responses: list[Answer] = Field(min_length=1, max_length=200)


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


MAX_NEW_TOKENS = 256
MAX_GENERATE_PROMPT = 4000  # characters; the model's positions bound it further (a 422 then)
MAX_WEIGHTS = 64


class GenerateIn(In):
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_GENERATE_PROMPT), AfterValidator(_not_blank)] = Field(
        description="What the person asks (one user turn; the run's chat template is applied).")
    max_new_tokens: int = Field(64, ge=1, le=MAX_NEW_TOKENS, description="Most tokens to generate.")
    do_sample: bool = Field(False, description="Sample (seeded by 'seed') instead of greedy decoding.")
    temperature: float = Field(0.7, gt=0.0, le=5.0, allow_inf_nan=False, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False, description="Nucleus sampling mass.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Sampling seed: the same request gives the same text.")
    weights: dict[Annotated[str, Field(min_length=1, max_length=128)],
                  Annotated[float, Field(ge=-100.0, le=100.0, allow_inf_nan=False)]] | None = Field(
        None, min_length=1, max_length=MAX_WEIGHTS,
        description="CMPO runs only: attribute weights lambda (names the run was trained with; missing "
                    "ones are 0). Without them the weights are inferred from the person's choices.")

    @model_validator(mode="after")
    def _sampling(self) -> "GenerateIn":
        set_ = self.model_fields_set
        if not self.do_sample and ({"temperature", "top_p", "seed"} & set_):
            raise ValueError("temperature, top_p and seed apply to sampling; set do_sample to true")
        return self


class GenerateOut(BaseModel):
    user_id: str
    model: str
    text: str
    tokens: int = Field(description="Generated tokens (the end-of-sequence token not counted).")
    finish_reason: str = Field(description="'stop' (the model ended) or 'length' (max_new_tokens reached).")
    steered_by: str = Field(description="'choices' (the person's choices), 'weights' (given CMPO weights) or "
                                        "'none' (no choices yet: NP-DPO's empty-context z, CMPO's uniform weights).")
    n_choices: int
    weights: dict[str, float] | None = Field(None, description="CMPO: the attribute weights used.")
