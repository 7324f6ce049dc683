"""Greedy and beam-search decoding for any `gridlstm.nn.models.seq2seq.Seq2Seq` model.

Both add one target token per step through the model's incremental ``step`` (the Reencoder
adds one target column and reuses everything already computed). Beam search follows the
common recipe (fairseq, OpenNMT): ``beam`` live hypotheses per sentence; each step takes the
best ``2 * beam`` extensions, an extension ending in </s> is finished, the others refill the
beam, and the best finished one by score / length ** length_penalty wins (the length counts
</s>). A sentence stops once it has ``beam`` finished hypotheses and no live one can still
beat the best of them, or at ``max_len``. "Can still beat" uses an optimistic bound that holds
for every length penalty: a live hypothesis's log-probability only falls as it grows, so its
best final score is its current one divided by the most favourable final length: ``max_len``
for a penalty > 0 (dividing a negative score by a larger number raises it), one more token
(its </s>) for a penalty <= 0. Comparing a live hypothesis at its current length, without the
</s> it still needs, stopped too early (a live "A C" with P(</s> | A C) = 0.99 lost to a
finished "A"); fairseq's rule, stop at ``beam`` finished, drops live hypotheses far more
probable than all finished ones. With ``beam=1`` this is greedy decoding. <s> and <pad> are
never proposed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gridlstm.nn.models.seq2seq import Seq2Seq


def allowed(logits: Tensor, bos: int, pad: int = 0) -> Tensor:
    """Logits with <s> and <pad> ruled out: neither is ever a target."""
    logits = logits.float().clone()
    logits[:, [bos, pad]] = float("-inf")
    return logits


def max_length(src_lengths: Tensor, ratio: float, extra: int, limit: int) -> int:
    return int(min(limit, ratio * int(src_lengths.max()) + extra))


@torch.no_grad()
def greedy(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, bos: int, eos: int, max_len: int
) -> list[list[int]]:
    """The arg-max token at every step until </s> (not included) or ``max_len`` tokens."""
    state = model.start(src, src_lengths)
    tokens = torch.full((src.shape[0],), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    outputs: list[list[int]] = [[] for _ in range(src.shape[0])]
    for _ in range(max_len):
        logits, state = model.step(state, tokens)
        tokens = allowed(logits, bos).argmax(-1)
        for row in (~done).nonzero().flatten().tolist():
            if tokens[row].item() == eos:
                done[row] = True
            else:
                outputs[row].append(tokens[row].item())
        if bool(done.all()):
            break
    return outputs


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    bos: int,
    eos: int,
    max_len: int,
    beam: int = 4,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Best finished hypothesis per sentence (token ids without <s> / </s>)."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    batch, device = src.shape[0], src.device
    rows = torch.arange(batch, device=device).repeat_interleave(beam)
    state = model.reorder(model.start(src, src_lengths), rows)
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # all beams start equal: keep one copy alive
    tokens = torch.full((batch * beam,), bos, dtype=torch.long, device=device)
    history: list[list[list[int]]] = [[[] for _ in range(beam)] for _ in range(batch)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    active = [True] * batch

    def normalised(score: float, length: int) -> float:
        return score / max(1, length) ** length_penalty

    def best_possible(score: float, length: int) -> float:
        """The best normalised score a live hypothesis of ``length`` tokens can still reach
        (module docstring): scores only fall, so only the final length can help."""
        final = max_len if length_penalty > 0 else min(length + 1, max_len)
        return normalised(score, final)

    for step in range(max_len):
        logits, state = model.step(state, tokens)
        vocab = logits.shape[-1]
        logp = allowed(logits, bos).log_softmax(-1).view(batch, beam, vocab)
        candidates = (scores[:, :, None] + logp).view(batch, -1)
        top_scores, top_index = candidates.topk(min(2 * beam, candidates.shape[1]), dim=-1)
        source_beam, token = top_index // vocab, top_index % vocab
        new_scores = torch.full_like(scores, float("-inf"))
        new_tokens = torch.full((batch, beam), eos, dtype=torch.long, device=device)
        pick = torch.arange(batch * beam, device=device).view(batch, beam)  # default: keep
        new_history: list[list[list[int]]] = []
        last = step == max_len - 1
        for b in range(batch):
            kept: list[list[int]] = []
            if active[b]:
                for rank in range(top_scores.shape[1]):
                    score = top_scores[b, rank].item()
                    if score == float("-inf"):
                        break
                    k, t = source_beam[b, rank].item(), token[b, rank].item()
                    prefix = history[b][k]
                    if t == eos:
                        if rank < beam:  # only extensions that rank within the beam finish
                            finished[b].append((normalised(score, len(prefix) + 1), prefix))
                    elif len(kept) < beam:
                        slot = len(kept)
                        kept.append(prefix + [t])
                        new_scores[b, slot] = score
                        new_tokens[b, slot] = t
                        pick[b, slot] = b * beam + k
                    if len(kept) == beam and len(finished[b]) >= beam:
                        break
                live = [best_possible(new_scores[b, i].item(), len(h)) for i, h in enumerate(kept)]
                best_finished = max((score for score, _ in finished[b]), default=float("-inf"))
                best_live = max(live, default=float("-inf"))
                if last or (len(finished[b]) >= beam and best_live <= best_finished):
                    if last:  # out of steps: unfinished hypotheses compete as they are
                        for slot, hyp in enumerate(kept):
                            score = new_scores[b, slot].item()
                            finished[b].append((normalised(score, len(hyp)), hyp))
                    active[b] = False
            kept += [[] for _ in range(beam - len(kept))]
            new_history.append(kept)
        if not any(active):
            break
        history, scores = new_history, new_scores
        state = model.reorder(state, pick.flatten())
        tokens = new_tokens.flatten()
    return [max(f, key=lambda item: item[0])[1] if f else [] for f in finished]


def decode(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    bos: int,
    eos: int,
    max_len: int,
    beam: int = 1,
    length_penalty: float = 1.0,
) -> list[list[int]]:
    """Greedy for ``beam=1``, beam search otherwise."""
    if beam == 1:
        return greedy(model, src, src_lengths, bos, eos, max_len)
    return beam_search(model, src, src_lengths, bos, eos, max_len, beam, length_penalty)
