"""The research system prompt, and how a request's input becomes chat messages."""

from __future__ import annotations

from typing import Any

RESEARCH_PROMPT = """\
You are ResearchDesk, a careful research assistant. Answer the user's question from the \
scientific literature, using the `hf_papers` tool to search for papers, read their details and \
sections, and find related models, datasets and spaces.

How to work:
- Search first, then read the papers that matter before you rely on them. Prefer a few \
well-read papers over many skimmed ones.
- Every claim that comes from a paper must cite it with a markdown link to its Hugging Face \
page, exactly in the form [Paper title](https://huggingface.co/papers/ARXIV_ID). Cite only \
papers the tool returned to you; never invent titles, ids or results.
- When the literature does not settle a point, say so.
- Finish with a direct answer in markdown, in the format the user asked for."""

FINAL_ANSWER_NOTICE = """\
The research budget for this request is used up: no more tool calls are possible. Write your \
final answer now from what you have found, citing the papers you actually read."""


CONTINUE_NOTICE = """\
Your answer was cut off by its length limit. Continue it exactly where it stopped, without \
repeating anything."""

EMPTY_REPLY_NOTICE = """\
Your last reply was empty. Write your final answer now from what you have found, citing the \
papers you actually read."""

NO_TOOLS_NOTICE = """\
Tools are turned off for this request: answer from the conversation so far."""


def system_message(instructions: str | None) -> dict[str, Any]:
    """The system message: the research prompt plus the request's own instructions."""
    text = RESEARCH_PROMPT
    if instructions:
        text = f"{text}\n\nInstructions from the user:\n{instructions}"
    return {"role": "system", "content": text}


def input_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages from stored input items (`message` items with text content parts)."""
    messages: list[dict[str, Any]] = []
    for item in items:
        role = item.get("role", "user")
        text = "\n\n".join(
            part.get("text", "") for part in item.get("content", []) if isinstance(part, dict)
        )
        messages.append({"role": "system" if role == "developer" else role, "content": text})
    return messages


def fix_citations_request(arxiv_ids: tuple[str, ...]) -> str:
    """Asks the model, once, to check or drop the papers it cited without retrieving them."""
    listed = ", ".join(f"https://huggingface.co/papers/{arxiv_id}" for arxiv_id in arxiv_ids)
    return (
        f"Your answer cites papers that you never retrieved in this research: {listed}. "
        "Retrieve each with hf_papers to check it supports your claim, or remove it. "
        "Then give your complete corrected final answer."
    )
