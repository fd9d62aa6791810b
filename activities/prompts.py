"""Prompts and structured-output schemas of the UPEE phases."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, Field, field_validator

from db.chat import HistoryMessage
from llm.budget import CHARS_PER_TOKEN, estimate_tokens
from llm.types import ChatMessage

ANSWER_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the user's last message accurately and concisely."
)


class Understanding(BaseModel):
    intent: str = Field(description="What the user wants, in a few words")
    entities: list[str] = Field(default_factory=list, description="Names, things and values the request is about")
    needs_workers: bool = Field(default=False, description="True when tools or worker agents are needed")


class PlannedTask(BaseModel):
    task_type: str = Field(description="One of the worker task types offered")
    payload: dict[str, Any] = Field(default_factory=dict, description="The task type's parameters")


class Plan(BaseModel):
    steps: list[str] = Field(default_factory=list, description="The steps to produce the answer")
    worker_tasks: list[PlannedTask] = Field(default_factory=list,
                                            description="Worker tasks whose results the reply needs, often none")


class Evaluation(BaseModel):
    score: float = Field(description="Answer quality from 0 (useless) to 1 (excellent)")
    reason: str = Field(default="", description="One sentence on what is good or missing")

    @field_validator("score")
    @classmethod
    def _normalise_score(cls, score: float) -> float:
        """Bring a score given out of 10 or 100 (small models often do) into 0..1."""
        if 1.0 < score <= 10.0:
            score /= 10.0
        elif 10.0 < score <= 100.0:
            score /= 100.0
        return min(max(score, 0.0), 1.0)


CUT_MARKER = "[earlier text cut] "


def fit_history(history: list[HistoryMessage], token_budget: int) -> list[HistoryMessage]:
    """Keep the newest messages whose estimated tokens fit in `token_budget`, dropping the oldest first.

    The newest message is always kept; alone over the budget, it keeps the end of its text.
    """
    kept: list[HistoryMessage] = []
    used = 0
    for message in reversed(history):
        cost = estimate_tokens(message.content)
        if kept and used + cost > token_budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    if kept and used > token_budget:
        keep_chars = max(max(token_budget, 1) * CHARS_PER_TOKEN - len(CUT_MARKER), 1)
        kept[-1] = dataclasses.replace(kept[-1], content=CUT_MARKER + kept[-1].content[-keep_chars:])
    return kept


def transcript(history: list[HistoryMessage]) -> str:
    return "\n".join(f"{message.role}: {message.content}" for message in history)


def understand_messages(history: list[HistoryMessage]) -> list[ChatMessage]:
    return [
        ChatMessage("system", "Read the conversation and describe the user's last request as JSON "
                    "with the fields intent, entities and needs_workers."),
        ChatMessage("user", transcript(history)),
    ]


def plan_messages(
    history: list[HistoryMessage], understanding: dict[str, object], task_catalog: str = ""
) -> list[ChatMessage]:
    system = ("Plan how to answer the user's last request. Reply as JSON with the field steps, a short list "
              "of steps, and the field worker_tasks, a list that is usually empty.")
    if task_catalog:
        system += ("\nWorker agents can run these tasks; add one to worker_tasks, as {\"task_type\": ..., "
                   "\"payload\": {...}}, only when its result is needed for the answer:\n" + task_catalog)
    return [
        ChatMessage("system", system),
        ChatMessage("user", f"Conversation:\n{transcript(history)}\n\nUnderstanding: {understanding}"),
    ]


def answer_messages(
    history: list[HistoryMessage], plan_steps: list[str], previous_answer: str | None, critique: str | None,
    task_results: list[str] | None = None,
) -> list[ChatMessage]:
    system = ANSWER_SYSTEM_PROMPT
    if plan_steps:
        system += "\nFollow this plan: " + "; ".join(plan_steps)
    if task_results:
        system += "\nUse these results of worker tasks:\n" + "\n".join(task_results)
    messages = [ChatMessage("system", system)]
    messages += [ChatMessage(message.role, message.content) for message in history]  # type: ignore[arg-type]
    if previous_answer is not None:
        messages.append(ChatMessage("assistant", previous_answer))
        messages.append(ChatMessage("user", f"Improve that answer. Reviewer's note: {critique or 'none'}"))
    return messages


def evaluate_messages(history: list[HistoryMessage], answer: str) -> list[ChatMessage]:
    return [
        ChatMessage("system", "Rate how well the answer serves the user's last message. Reply as JSON "
                    "with score (a number from 0 to 1) and reason (one sentence)."),
        ChatMessage("user", f"Conversation:\n{transcript(history)}\n\nAnswer:\n{answer}"),
    ]
