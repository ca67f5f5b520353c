"""Each clip's video+audio prefix run once: its KV cache serves every question (and rotation) about the clip.

The chat template puts the clip before the question (``<|vision_bos|> video+audio <|vision_eos|>``
then the prompt), so everything up to the clip's end is the same for the 4 questions of an item (16
with rotations): the vision and audio encoders and the long prefix of the language model run once
per clip, and each question only prefills its own few tokens on top of a copy of the prefix's cache.

Positions are the subtle part. Qwen2.5-Omni's rotary positions are 3-D (time, height, width) and
computed over the whole sequence by ``get_rope_index``; text after the clip continues from the
position of the clip's last token + 1, in all three rows. ``generate`` is given the positions of the
whole sequence explicitly (``[4, batch, length]``: the attention-mask positions used for the mask,
then the three rotary rows, as the thinker's own ``_prepare_position_ids_for_generation`` builds
them), so decoding continues exactly as it does from the full prompt.

Several questions (of one clip or several) decode as one batch: prefixes are left-padded to the
longest, questions padded in the middle (after their prefix), the masks hide both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .base import ModelError
from .omni_processing import MODEL_KWARGS, encode_clip

VISION_END = "<|vision_eos|>"


@dataclass
class Prefix:
    """A clip's prefix: token ids, rotary positions (``[3, P]``), per-layer ``(keys, values)`` (``[1, H, P, D]``)."""

    input_ids: torch.Tensor
    positions: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def length(self) -> int:
        """Number of prefix tokens."""
        return int(self.input_ids.shape[0])

    @property
    def next_position(self) -> int:
        """The rotary position of the first token after the clip (its last token's + 1, as ``get_rope_index`` gives)."""
        return int(self.positions[:, -1].max()) + 1


def split_after_clip(text: str, tokenizer: Any) -> tuple[str, list[int]] | None:
    """``(prefix text, question token ids)`` of a templated prompt cut after the clip's end; None when not shareable.

    Shared only when the cut is a token boundary (the token ids of the whole text are those of the
    two parts), which holds because the cut follows a special token.
    """
    marker = getattr(tokenizer, "vision_eos_token", None) or VISION_END
    at = text.rfind(marker)
    if at < 0 or at + len(marker) == len(text):
        return None
    prefix, rest = text[:at + len(marker)], text[at + len(marker):]

    def ids(t: str) -> list[int]:
        return tokenizer(t, add_special_tokens=False)["input_ids"]

    question = ids(rest)
    return (prefix, question) if ids(text) == ids(prefix) + question else None


def encode_prefix(model: Any, processor: Any, clip: Any, prefix_text: str, device: str, dtype: Any) -> Prefix:
    """Run the encoders and the language model over one clip's prefix; keep its cache and positions."""
    enc = encode_clip(processor, clip, prefix_text)
    inputs = {k: v.to(device, dtype) if k in ("pixel_values_videos", "input_features") else v.to(device)
              for k, v in enc.items()}
    with torch.inference_mode():
        out = model(**inputs, use_cache=True, **MODEL_KWARGS)
        positions, _ = model.model.get_rope_index(
            inputs["input_ids"], None, inputs["video_grid_thw"], inputs["attention_mask"], True,
            inputs["feature_attention_mask"].sum(-1), inputs["video_second_per_grid"])
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    return Prefix(input_ids=inputs["input_ids"][0], positions=positions[:, 0], layers=layers)


class PrefixCache:
    """The prefixes of the last ``capacity`` clips (an item's questions may span several ``generate`` calls)."""

    def __init__(self, capacity: int = 4):
        self.capacity = max(1, int(capacity))
        self._items: OrderedDict[Any, Prefix] = OrderedDict()

    def get(self, key: Any, make: Callable[[], Prefix]) -> Prefix:
        """The prefix stored under ``key``, made (and stored, evicting the oldest) when absent."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        prefix = make()
        self._items[key] = prefix
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return prefix

    def clear(self) -> None:
        """Drop every stored prefix (frees their caches)."""
        self._items.clear()


def shared_inputs(model: Any, prefixes: Sequence[Prefix], questions: Sequence[Sequence[int]], pad_token_id: int,
                  device: str) -> dict[str, Any]:
    """``generate`` keyword arguments for questions (token ids) each after its clip's prefix.

    Row ``i`` is ``[left pad][prefixes[i]][middle pad][questions[i]]``; ``cache`` holds a copy of
    each prefix's keys/values (padded alike), so ``generate`` prefills only the question tokens.
    """
    from transformers import DynamicCache

    if len(prefixes) != len(questions) or not prefixes:
        raise ModelError(f"{len(prefixes)} prefixes but {len(questions)} questions")
    if any(t != "full_attention" for t in getattr(model.config.get_text_config(), "layer_types", None) or []):
        raise ModelError("prefix sharing needs full attention in every layer (this checkpoint uses sliding windows)")
    longest_prefix = max(p.length for p in prefixes)
    longest_question = max(len(q) for q in questions)
    length = longest_prefix + longest_question
    batch = len(prefixes)
    input_ids = torch.full((batch, length), pad_token_id, dtype=torch.long)
    mask = torch.zeros((batch, length), dtype=torch.long)
    rotary = torch.ones((3, batch, length), dtype=torch.long)
    for i, (prefix, question) in enumerate(zip(prefixes, questions)):
        start = longest_prefix - prefix.length
        input_ids[i, start:longest_prefix] = prefix.input_ids.cpu()
        mask[i, start:longest_prefix] = 1
        rotary[:, i, start:longest_prefix] = prefix.positions.cpu()
        q_start = length - len(question)
        input_ids[i, q_start:] = torch.as_tensor(question, dtype=torch.long)
        mask[i, q_start:] = 1
        rotary[:, i, q_start:] = prefix.next_position + torch.arange(len(question))
    text = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate derives it from the mask
    position_ids = torch.cat([text[None], rotary], dim=0)
    layers = []
    for layer in range(len(prefixes[0].layers)):
        keys, values = [], []
        for prefix in prefixes:
            k, v = prefix.layers[layer]
            pad = longest_prefix - prefix.length  # zeros at the left, hidden by the mask
            keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
            values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
        layers.append((torch.cat(keys), torch.cat(values)))
    cache = DynamicCache(ddp_cache_data=layers, config=model.config)
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device),
            "position_ids": position_ids.to(device), "cache": cache}
