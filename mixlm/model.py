"""The MixLM model: encoder LLM (last-N hidden states + projection) and the ranker's mixed forward (paper §3).

Everything works on embeddings: a text item is its token embeddings, a MixLM item is its cached item
tokens, and both are followed by the readout suffix. Sequences are packed with ``multi_item`` layouts, so the
naive path (one item per sequence) and multi-item scoring (all items of a request in one sequence) are the
same code with different packing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from mixlm import prompts
from mixlm.multi_item import multi_item_layout, pad_layouts


def sample_item_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor, n_tokens: int, sampling: str) -> torch.Tensor:
    """Hidden states [B, L, D] of right-padded inputs -> item tokens [B, n_tokens, D].

    "last": the states of the last n_tokens real tokens (§3, a decoder LLM). "mean": the mean state of each of
    n_tokens equal spans of the real tokens (n_tokens = 1 is a sentence encoder's mean pooling).
    """
    lengths = attention_mask.sum(1)
    if sampling == "last":
        idx = (lengths[:, None] - n_tokens + torch.arange(n_tokens, device=lengths.device)).clamp(min=0)
        return hidden.gather(1, idx[..., None].expand(-1, -1, hidden.shape[-1]))
    if sampling != "mean":
        raise ValueError(f"unknown sampling {sampling!r}")
    pos = torch.arange(hidden.shape[1], device=hidden.device)
    span = (pos[None, :] * n_tokens) // lengths.clamp(min=1)[:, None]  # [B, L]: which span each position is in
    weights = (span[:, None, :] == torch.arange(n_tokens, device=hidden.device)[None, :, None]) & attention_mask.bool()[:, None, :]
    weights = weights.to(hidden.dtype)
    return (weights @ hidden) / weights.sum(-1, keepdim=True).clamp(min=1)


class Encoder(nn.Module):
    """Encoder LM (eq. 4) without an output head -> T_S item tokens per item (§3), in the ranker's width."""

    def __init__(self, body: nn.Module, n_tokens: int, out_dim: int | None = None, sampling: str = "last"):
        super().__init__()
        self.body = body
        self.n_tokens = n_tokens
        self.sampling = sampling
        dim = body.config.hidden_size
        # Identity when encoder and ranker share a hidden size; a learned map otherwise (§4.1).
        self.projector = nn.Linear(dim, out_dim, bias=False) if out_dim and out_dim != dim else nn.Identity()

    def states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Right-padded ids [B, L] -> the body's sampled states [B, n_tokens, D_encoder], before the projector."""
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return sample_item_tokens(hidden, attention_mask, self.n_tokens, self.sampling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Right-padded ids [B, L] -> item tokens [B, n_tokens, D]."""
        return self.projector(self.states(input_ids, attention_mask))


@dataclass
class Packed:
    """Sequences ready for one forward pass, and where to read each item's score."""

    inputs_embeds: torch.Tensor  # [B, L, D]
    position_ids: torch.Tensor  # [B, L]
    mask: torch.Tensor  # [B, 1, L, L] bool
    rows: torch.Tensor  # [N] sequence of each item
    cols: torch.Tensor  # [N] readout position of each item


def pack(requests: Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]], multi_item: bool = True) -> Packed:
    """(prefix [P, D], items [[L_i, D], ...]) per request -> one padded batch.

    multi_item=True: one sequence per request (prefix once). False: one sequence per item (naive).
    """
    sequences: list[torch.Tensor] = []
    layouts = []
    for prefix, items in requests:
        groups = [list(items)] if multi_item else [[item] for item in items]
        for group in groups:
            layouts.append(multi_item_layout(prefix.shape[0], [t.shape[0] for t in group]))
            sequences.append(torch.cat([prefix, *group], 0))
    position_ids, mask = pad_layouts(layouts)
    width, dim = position_ids.shape[1], sequences[0].shape[-1]
    embeds = sequences[0].new_zeros(len(sequences), width, dim)
    rows, cols = [], []
    for b, (seq, layout) in enumerate(zip(sequences, layouts)):
        embeds[b, : seq.shape[0]] = seq
        rows += [b] * len(layout.readout)
        cols += layout.readout.tolist()
    device = embeds.device
    return Packed(
        inputs_embeds=embeds,
        position_ids=position_ids.to(device),
        mask=mask.to(device),
        rows=torch.tensor(rows, device=device),
        cols=torch.tensor(cols, device=device),
    )


class Ranker(nn.Module):
    """Ranker LLM (eq. 3/6): a causal LM read out as P(yes) from the yes/no logits at each item's last token."""

    def __init__(self, lm: nn.Module, yes_id: int, no_id: int):
        super().__init__()
        self.lm = lm
        self.yes_id, self.no_id = yes_id, no_id

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def forward(self, packed: Packed) -> tuple[torch.Tensor, torch.Tensor]:
        """-> yes/no logits [N, 2] and last hidden states [N, D] at each readout (for self-alignment, §4.3.3)."""
        out = self.lm.model(
            inputs_embeds=packed.inputs_embeds,
            attention_mask=packed.mask,
            position_ids=packed.position_ids,
            use_cache=False,
        )
        hidden = out.last_hidden_state[packed.rows, packed.cols]
        return self.readout(hidden), hidden

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        # Only two rows of the LM head are needed: no [N, vocab] logits.
        head = self.lm.get_output_embeddings().weight[[self.yes_id, self.no_id]]
        # In fp32 even for a bf16 model: bf16 logits put P(yes) on a coarse grid and whole rankings tie.
        return hidden.float() @ head.float().T

    def forward_prefix_cached(self, prefix: torch.Tensor, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """In-batch prefix caching (§5.2.2): prefix KV computed once, reused by every item. -> logits [n, 2]."""
        body = self.lm.model
        cache = body(inputs_embeds=prefix[None], use_cache=True).past_key_values
        cache.batch_repeat_interleave(len(items))
        p, width = prefix.shape[0], max(t.shape[0] for t in items)
        embeds = prefix.new_zeros(len(items), width, prefix.shape[-1])
        attn = torch.zeros(len(items), p + width, dtype=torch.long, device=prefix.device)
        attn[:, :p] = 1
        for i, t in enumerate(items):
            embeds[i, : t.shape[0]] = t
            attn[i, p : p + t.shape[0]] = 1
        position_ids = (p + torch.arange(width, device=prefix.device)).expand(len(items), -1)
        out = body(inputs_embeds=embeds, attention_mask=attn, position_ids=position_ids, past_key_values=cache, use_cache=True)
        last = torch.tensor([t.shape[0] - 1 for t in items], device=prefix.device)
        return self.readout(out.last_hidden_state[torch.arange(len(items), device=prefix.device), last])


def p_yes(logits: torch.Tensor) -> torch.Tensor:
    """Score = P(yes) over the {yes, no} pair."""
    return torch.softmax(logits.float(), -1)[:, 0]


@dataclass
class MixLM:
    """Tokenizer + encoder + ranker, on one device and dtype, with the model_version they are paired under."""

    tokenizer: object  # the ranker's
    encoder: Encoder
    ranker: Ranker
    model_version: str
    max_item_text_tokens: int = 512
    encoder_tokenizer: object = None  # None: the encoder is of the ranker's family and shares its tokenizer
    # Only `mixlm bench encoder` changes this (to compare templates); it is part of model_version via the prompts.
    encoder_tail: str = prompts.ENCODER_SUFFIX
    _suffix: list[int] | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return self.ranker.lm.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.ranker.lm.get_input_embeddings().weight.dtype

    @property
    def dim(self) -> int:
        return self.ranker.lm.config.hidden_size

    @property
    def n_item_tokens(self) -> int:
        return self.encoder.n_tokens

    def ids(self, text: str, max_tokens: int | None = None) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False, truncation=max_tokens is not None, max_length=max_tokens).input_ids
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def suffix_embeds(self) -> torch.Tensor:
        if self._suffix is None:
            self._suffix = self.ids(prompts.ITEM_SUFFIX).tolist()
        # A fresh ids tensor each call: one cached under inference_mode could not be used with grad (training).
        return self.ranker.embed(torch.tensor(self._suffix, dtype=torch.long, device=self.device))

    def prefix_embeds(self, query: str, user_context: str | None = None) -> torch.Tensor:
        return self.ranker.embed(self.ids(prompts.ranker_prefix(query, user_context)))

    def mixed_item(self, item_tokens: torch.Tensor) -> torch.Tensor:
        """Item tokens [T_S, D] -> the item's segment of the mixed prompt (§4.2.3)."""
        return torch.cat([item_tokens.to(self.device, self.dtype), self.suffix_embeds()], 0)

    def text_item(self, text: str) -> torch.Tensor:
        """Item text -> the item's segment of the teacher prompt (§4.2.2)."""
        return torch.cat([self.ranker.embed(self.ids(text, self.max_item_text_tokens)), self.suffix_embeds()], 0)

    def tokenize_items(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder inputs, right-padded: ids [B, L] and attention mask [B, L]."""
        if self.encoder_tokenizer is not None:
            # A sentence encoder reads the plain item text with its own special tokens, as it was trained.
            enc = self.encoder_tokenizer(list(texts), padding=True, truncation=True,
                                         max_length=self.max_item_text_tokens + 2, return_tensors="pt")
            return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        tail = self.ids(self.encoder_tail)
        rows = [torch.cat([self.ids(prompts.encoder_input(t), self.max_item_text_tokens), tail]) for t in texts]
        width = max(r.shape[0] for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = 1
        return ids, mask

    @torch.inference_mode()
    def encode_items(self, texts: Sequence[str], batch_size: int = 16) -> torch.Tensor:
        """Item texts -> item tokens [B, T_S, D] (nearline, paper §5.1). Batches sorted by length to pad less."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.n_item_tokens, self.dim, dtype=self.dtype, device=self.device)
        for s in range(0, len(order), batch_size):
            chunk = order[s : s + batch_size]
            ids, mask = self.tokenize_items([texts[i] for i in chunk])
            out[chunk] = self.encoder(ids, mask).to(self.dtype)
        return out

    @torch.inference_mode()
    def score_segments(
        self, requests: Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]], multi_item: bool = True
    ) -> list[torch.Tensor]:
        """Score several requests in one forward pass -> P(yes) per item, per request."""
        logits, _ = self.ranker(pack(requests, multi_item=multi_item))
        scores = p_yes(logits).cpu()
        return list(torch.split(scores, [len(items) for _, items in requests]))

    def score_mixed(
        self, query: str, item_tokens: Sequence[torch.Tensor], user_context: str | None = None, multi_item: bool = True
    ) -> torch.Tensor:
        with torch.inference_mode():
            request = (self.prefix_embeds(query, user_context), [self.mixed_item(t) for t in item_tokens])
        return self.score_segments([request], multi_item=multi_item)[0]

    def score_text(
        self, query: str, texts: Sequence[str], user_context: str | None = None, multi_item: bool = True
    ) -> torch.Tensor:
        with torch.inference_mode():
            request = (self.prefix_embeds(query, user_context), [self.text_item(t) for t in texts])
        return self.score_segments([request], multi_item=multi_item)[0]
