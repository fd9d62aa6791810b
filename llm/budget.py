"""Token budgets: what part of a model's context window the conversation may fill.

Token counts here are estimates from the text length, because the project
calls many providers and none of their tokenizers is at hand.
NOTE: 3 characters per token counts more tokens than English text usually
has (the common rule of thumb is about 4), so budgets err on the safe side.
Dense scripts such as Chinese may still use more tokens than estimated.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 3
# Room for the phase's own instructions and the chat template around the messages.
PROMPT_OVERHEAD_TOKENS = 200
ANSWER_MAX_TOKENS = 512
STRUCTURED_MAX_TOKENS = 256


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def answer_max_tokens(context_window: int) -> int:
    """Return the answer length limit: 512 tokens, or a quarter of a small context window."""
    return min(ANSWER_MAX_TOKENS, context_window // 4)


def max_message_tokens(context_window: int) -> int:
    """Return the largest user message a model can take with room left for its answer."""
    return context_window - answer_max_tokens(context_window) - PROMPT_OVERHEAD_TOKENS
