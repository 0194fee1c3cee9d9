"""The request parameters kept with a run (`responses.params`): the API writes, workers read."""

MODEL_OPTIONS = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "prompt_cache_key",
)
"""Passed to every chat-completions call of the run when the client set them."""

RUN_PARAMS = (*MODEL_OPTIONS, "max_output_tokens", "max_tool_calls", "tool_choice", "store")
"""Every request parameter kept with the run (the worker applies the limits and tool choice)."""
