"""Prompt templates (paper §4.2), as pure functions.

The ranker prompt is split where multi-item scoring needs it: a shared prefix (system + query) and, per
item, the item (text tokens for the teacher, embedding tokens for MixLM) followed by the readout suffix.
``ranker_prefix(q) + item_text + ITEM_SUFFIX`` is exactly the §4.2.2 teacher template.
"""

from __future__ import annotations

SYSTEM = "[SYSTEM] : Output only 'Yes' or 'No' based on how well the job matches the query; no extra text."
ITEM_SUFFIX = "\nyes or no ?"
ENCODER_PREFIX = "Item information: "
# Not in the paper: a fixed tail after the (truncated) item text, so the last token's state, which is the item
# token at T_S = 1, is a summary of the item rather than a guess at the next word of a cut-off description
# (the PromptEOL trick for decoder embeddings). Zero-shot, base SmolLM2, onet_titles full corpus: NDCG@10 0.036
# without it, 0.248 with it (`mixlm bench encoder`; bench/RESULTS.md, "encoder template").
ENCODER_SUFFIX = '\nThis job in one word: "'
# Changing any template changes what the trained weights expect: it is part of model_version.
PROMPT_VERSION = "p2"


def item_text(title: str, text: str, fields: dict[str, str] | None = None) -> str:
    """The text an item is known by: title, its structured fields, then the description."""
    head = title.strip()
    extras = ", ".join(f"{k}: {v}" for k, v in sorted((fields or {}).items()) if v)
    if extras:
        head = f"{head} ({extras})" if head else extras
    body = text.strip()
    return f"{head}\n{body}" if head and body else head or body


def ranker_prefix(query: str, user_context: str | None = None) -> str:
    user = f"\n[USER] : {user_context.strip()}" if user_context and user_context.strip() else ""
    return f"{SYSTEM}{user}\n[QUERY] : {query.strip()}\n[CANDIDATE] : "


def teacher_prompt(query: str, item: str, user_context: str | None = None) -> str:
    """The full-text teacher prompt of §4.2.2."""
    return ranker_prefix(query, user_context) + item + ITEM_SUFFIX


def encoder_input(item: str) -> str:
    """The encoder LLM's input (§4.2.3) before its tail: the part that may be cut; ENCODER_SUFFIX always follows."""
    return ENCODER_PREFIX + item
