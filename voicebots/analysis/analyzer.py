"""Post-call analysis: a summary, a success verdict with its reason, and data extracted by a JSON Schema,
asked of a language model in one request. No Django here.

The model answers with one JSON object. An answer that is not JSON, or does not fit the schema, is sent
back once with the problem; a second misfit fails the analysis with the reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .llm import Completer
from .schema import data_problem

MAX_PROMPT_CONTEXT_CHARS = 4000  # of the bot's own prompt: enough to know what the call was for
MAX_TRANSCRIPT_CHARS = 60_000  # the end of a very long call is kept

KINDS = {"inbound": "an inbound phone call", "outbound": "an outbound phone call",
         "web": "a voice call from a web browser"}
SYSTEM = ("You review transcripts of phone calls between a caller and an AI voice agent. Reply with one JSON "
          "object and nothing else: no prose before or after it, no code fences.")


@dataclass(frozen=True)
class Settings:
    """A bot's `analysis` settings."""

    summary: bool = True
    success_criteria: str = ""
    extraction_schema: dict | None = None

    @classmethod
    def from_json(cls, value: dict | None) -> Settings:
        value = value or {}
        return cls(summary=bool(value.get("summary", True)),
                   success_criteria=(value.get("success_criteria") or "").strip(),
                   extraction_schema=value.get("extraction_schema") or None)

    @property
    def wanted(self) -> bool:
        return self.summary or bool(self.success_criteria) or self.extraction_schema is not None


@dataclass(frozen=True)
class CallFacts:
    """What the model is told about the call."""

    turns: list[tuple[str, str]]  # (caller said, agent said as heard)
    bot_prompt: str = ""
    direction: str = ""
    duration_seconds: int | None = None
    end_reason: str = ""

    @property
    def caller_spoke(self) -> bool:
        return any(caller.strip() for caller, _ in self.turns)


@dataclass
class Result:
    summary: str | None = None
    success: bool | None = None
    success_reason: str | None = None
    data: dict | None = None


class AnalysisFailed(Exception):
    """The model's answers could not be used; the message says why."""


def answer_schema(settings: Settings) -> dict:
    """The JSON Schema of the model's whole answer for these settings."""
    properties: dict[str, Any] = {}
    if settings.summary:
        properties["summary"] = {"type": "string", "minLength": 1}
    if settings.success_criteria:
        properties["success"] = {"type": "boolean"}
        properties["success_reason"] = {"type": "string", "minLength": 1}
    if settings.extraction_schema is not None:
        properties["data"] = settings.extraction_schema
    return {"type": "object", "required": list(properties), "properties": properties}


def transcript(facts: CallFacts) -> str:
    lines = []
    for caller, agent in facts.turns:
        if caller.strip():
            lines.append(f"Caller: {caller.strip()}")
        if agent.strip():
            lines.append(f"Agent: {agent.strip()}")
    text = "\n".join(lines)
    return text if len(text) <= MAX_TRANSCRIPT_CHARS else "[...]\n" + text[-MAX_TRANSCRIPT_CHARS:]


def build_prompt(settings: Settings, facts: CallFacts) -> str:
    about = [KINDS.get(facts.direction, "a call")]
    if facts.duration_seconds is not None:
        about.append(f"{facts.duration_seconds} s long")
    if facts.end_reason:
        about.append(f"it ended because: {facts.end_reason}")
    keys = []
    if settings.summary:
        keys.append('- "summary": two to four sentences on what the caller wanted and what happened.')
    if settings.success_criteria:
        keys.append('- "success": true or false: did the call meet this goal? Goal: ' + settings.success_criteria)
        keys.append('- "success_reason": one sentence saying why, citing what was said.')
    if settings.extraction_schema is not None:
        keys.append('- "data": what the call says, as an object valid against this JSON Schema (leave out or use '
                    "null for what the call does not say, where the schema allows it):\n"
                    + json.dumps(settings.extraction_schema, indent=1))
    instructions = facts.bot_prompt.strip()[:MAX_PROMPT_CONTEXT_CHARS]
    return "\n\n".join(filter(None, [
        f"The agent's instructions, for context:\n<<<\n{instructions}\n>>>" if instructions else "",
        "The call: " + ", ".join(about) + ".",
        "Transcript (the agent's lines are what the caller heard):\n" + transcript(facts),
        "Reply with a JSON object with exactly these keys:\n" + "\n".join(keys),
    ]))


def parse(answer: str) -> Any:
    """The JSON object in `answer`, tolerating code fences or a stray sentence around it."""
    text = answer.strip()
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end < start:
        raise ValueError("the reply contains no JSON object")
    return json.loads(text[start:end + 1])


def _problem(answer: str, schema: dict) -> tuple[Any, str | None]:
    try:
        value = parse(answer)
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        return None, f"It is not valid JSON ({error})."
    problem = data_problem(value, schema)
    return value, (f"It does not fit the required shape: {problem}." if problem else None)


async def analyze(completer: Completer, settings: Settings, facts: CallFacts) -> Result:
    """Ask once, and once more with the problem if the answer does not fit. LLMError propagates."""
    schema = answer_schema(settings)
    prompt = build_prompt(settings, facts)
    problem = None
    for _ in range(2):
        answer = await completer.complete(SYSTEM, prompt)
        value, problem = _problem(answer, schema)
        if problem is None:
            return Result(summary=value.get("summary"), success=value.get("success"),
                          success_reason=value.get("success_reason"), data=value.get("data"))
        prompt = (f"{build_prompt(settings, facts)}\n\nYour previous reply was:\n{answer}\n\n"
                  f"It was rejected. {problem} Reply again with only the corrected JSON object.")
    raise AnalysisFailed(f"The model's answer was unusable twice. {problem}")
