"""Turn a stored response (and the ones it continues) into the agent's RunSpec."""

from __future__ import annotations

from typing import Any

from researchdesk.agent.prompts import input_messages, system_message
from researchdesk.agent.state import RunSpec
from researchdesk.agent.steps import LLMStep, Step
from researchdesk.config import Settings
from researchdesk.run_params import MODEL_OPTIONS
from researchdesk.store.models import ResponseRow


def build_spec(
    row: ResponseRow,
    chain: list[ResponseRow],
    chain_steps: dict[str, list[Step]],
    settings: Settings,
) -> RunSpec:
    """The agent's view of a run: prompt, earlier conversation, input, limits, options."""
    params = row.params
    history: list[dict[str, Any]] = []
    for earlier in chain:
        history.extend(input_messages(earlier.input_items))
        for step in chain_steps.get(earlier.id, []):
            if isinstance(step, LLMStep) and step.content:
                history.append({"role": "assistant", "content": step.content})
    options = {name: params[name] for name in MODEL_OPTIONS if params.get(name) is not None}
    return RunSpec(
        model=row.model,
        system=system_message(row.instructions),
        history=history,
        input=input_messages(row.input_items),
        max_turns=settings.max_turns,
        max_tool_calls=params.get("max_tool_calls"),
        max_output_tokens=params.get("max_output_tokens") or settings.max_output_tokens,
        final_answer_tokens=params.get("max_output_tokens") or settings.final_answer_max_tokens,
        tools_enabled=params.get("tool_choice") != "none",
        tool_concurrency=settings.tool_concurrency,
        options=options,
    )
