"""Batched CTC prefix beam search with tensor ops: one call decodes the whole batch, on CPU or CUDA.

Each utterance keeps ``K`` distinct prefixes with blank / non-blank ending probabilities
(``pb``, ``pnb``). Per frame, every prefix either *stays* (blank, or a repeat of its last token) or
is *extended* by one of ``C`` candidate tokens. An extension can only coincide with another beam's
stay when that beam's prefix is this prefix plus one token, so equal prefixes are found by looking
up each beam's parent hash among the beam hashes (a sort and a binary search), merged, and the
duplicate extension dropped. The loop runs over frames only; optional scorers (LM, lexicon, hotwords, grammar)
add per-extension score terms and carry their own per-beam state.
"""
from __future__ import annotations

import math
from typing import Protocol, Sequence

import torch

from crnn.decoding.hypothesis import Hypothesis

NEG_INF = float("-inf")
# Multiplier of the rolling prefix hash (odd, 64-bit; int64 products wrap around).
HASH_MUL = 0x5BD1E9955BD1E995


class Scorer(Protocol):
    """A term added to the search score, with its own per-beam state (all tensors on one device)."""

    def init_state(self, B: int, K: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Initial state: name -> (B, K) tensor (names unique across scorers)."""

    def extend(self, state: dict[str, torch.Tensor], last: torch.Tensor, cand: torch.Tensor) -> tuple[torch.Tensor, object]:
        """Score appending each candidate token to each beam.

        Args:
            state: this scorer's (B, K) state tensors.
            last: (B, K) last token of each prefix (0 for the empty prefix).
            cand: (B, C) candidate tokens.

        Returns:
            ``(delta, aux)``: (B, K, C) score added (``-inf`` forbids the extension), and anything
            ``advance`` needs again.
        """

    def advance(
        self, state: dict[str, torch.Tensor], aux: object, src: torch.Tensor, tok: torch.Tensor, ext: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """State of the K surviving candidates, (B, K) each: beam ``src`` followed by token ``tok``
        (0: it stayed), which was candidate ``ext`` (flat index into the (K, C) extensions)."""

    def final(self, state: dict[str, torch.Tensor], last: torch.Tensor) -> torch.Tensor:
        """(B, K) score added at the end of the utterance (``-inf`` forbids ending there)."""


def _skip_plan(
    log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, blank_skip: float | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose the frames to search: all valid frames, or those whose blank posterior <= blank_skip.

    Returns:
        frames: (B, T2) original index of each searched frame.
        steps: (B,) searched frames per utterance.
        skipped_before: (B, T2) summed blank log-prob of skipped frames just before each step
            (``nan`` where none was skipped).
        skipped_after: (B,) the same for skipped frames after the last step.
    """
    B, T, _ = log_probs.shape
    device = log_probs.device
    valid = torch.arange(T, device=device)[None, :] < lengths[:, None]
    lp_blank = log_probs[..., blank]
    keep = valid if blank_skip is None else valid & (lp_blank <= math.log(blank_skip))
    steps = keep.sum(1)
    T2 = max(int(steps.max()), 1) if B else 1
    # Kept frames first, in time order (a stable sort on "not kept").
    frames = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :T2]
    skipped_lp = torch.where(valid & ~keep, lp_blank, torch.zeros_like(lp_blank))
    cum = torch.nn.functional.pad(skipped_lp.cumsum(1), (1, 0))  # (B, T+1) exclusive prefix sums
    prev_end = torch.nn.functional.pad(frames[:, :-1] + 1, (1, 0))  # frame after the previous step
    run = cum.gather(1, frames) - cum.gather(1, prev_end)
    gap = frames > prev_end
    skipped_before = torch.where(gap, run, torch.full_like(run, float("nan")))
    last_end = torch.where(steps > 0, frames.gather(1, (steps - 1).clamp_min(0)[:, None])[:, 0] + 1, 0)
    skipped_after = cum.gather(1, lengths[:, None])[:, 0] - cum.gather(1, last_end[:, None])[:, 0]
    return frames, steps, skipped_before, skipped_after


@torch.no_grad()
def ctc_beam_search(
    log_probs: torch.Tensor,
    lengths: torch.Tensor,
    beam_size: int = 10,
    nbest: int = 1,
    blank: int = 0,
    token_prune: int | None = None,
    blank_skip: float | None = None,
    scorers: Sequence[Scorer] = (),
) -> list[list[Hypothesis]]:
    """CTC prefix beam search over a batch.

    Args:
        log_probs: (B, T, V) log-posteriors (any float dtype; searched in fp32), CPU or CUDA.
        lengths: (B,) valid frames per utterance.
        beam_size: prefixes kept per utterance. (Default: 10)
        nbest: hypotheses returned per utterance (at most ``beam_size``). (Default: 1)
        blank: blank token id. (Default: 0)
        token_prune: extend prefixes only by the ``token_prune`` most probable non-blank tokens of
            each frame; None extends by all. (Default: None)
        blank_skip: skip frames whose blank posterior exceeds this (e.g. 0.999), treating them as
            pure blank; None searches every frame. (Default: None)
        scorers: extra score terms (LM fusion, lexicon, hotwords, grammar); see ``Scorer``.

    Returns:
        Per utterance, up to ``nbest`` hypotheses (at least one), best first. ``score`` is the natural-log
        probability of the labeling (summed over its alignments) plus the scorers' terms; ``spans``
        hold each token's first frame (where the best surviving prefix emitted it) up to the end of
        the run of frames whose best token it is. When no prefix left in the beam satisfies the
        scorers' end-of-utterance terms (e.g. all end inside a lexicon word), those terms are
        dropped for that utterance, so it still gets its best prefixes.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    B, T, V = log_probs.shape
    if blank != 0:
        raise ValueError("the beam search assumes blank id 0")
    device = log_probs.device
    K = int(beam_size)
    if K < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if T == 0 or B == 0:
        return [[Hypothesis(tokens=[], score=0.0, confidence=1.0)] for _ in range(B)]
    lp = log_probs.float()
    lengths = lengths.to(device=device, dtype=torch.int64).clamp(0, T)
    frames, steps, skipped_before, skipped_after = _skip_plan(lp, lengths, blank, blank_skip)
    T2 = frames.size(1)
    C = V - 1 if token_prune is None else max(1, min(int(token_prune), V - 1))
    all_tokens = torch.arange(1, V, device=device).expand(B, V - 1)

    # Beam state, (B, K) each. Beam 0 holds the empty prefix; the rest start dead.
    pb = torch.full((B, K), NEG_INF, device=device)
    pb[:, 0] = 0.0
    pnb = torch.full((B, K), NEG_INF, device=device)
    extra = torch.zeros(B, K, device=device)  # summed scorer terms
    hsh = torch.zeros(B, K, dtype=torch.int64, device=device)
    parent_hsh = torch.zeros(B, K, dtype=torch.int64, device=device)
    last = torch.zeros(B, K, dtype=torch.int64, device=device)
    plen = torch.zeros(B, K, dtype=torch.int64, device=device)
    sstate: dict[str, torch.Tensor] = {}
    for s in scorers:
        sstate.update(s.init_state(B, K, device))
    back_parent: list[torch.Tensor] = []
    back_token: list[torch.Tensor] = []
    keep_idx = torch.arange(K, device=device).expand(B, K)
    hash_mul = torch.tensor(HASH_MUL, dtype=torch.int64, device=device)
    cand_pos = torch.arange(C, device=device).expand(B, C)

    min_steps = int(steps.min()) if B else 0
    # The searched frames, in order (a view when none is skipped).
    lp_steps = lp if blank_skip is None else lp.gather(1, frames[:, :, None].expand(B, T2, V))
    dead_hash = torch.iinfo(torch.int64).min  # never a real prefix hash (probability 2**-64)
    beam_base = (torch.arange(K, device=device) * C).expand(B, K)  # flat offset of each beam's candidates
    scores = torch.full((B, K + K * C + 1), NEG_INF, device=device)
    for j in range(T2):
        lp_t = lp_steps[:, j]  # (B, V)
        if blank_skip is not None:
            # Skipped pure-blank frames before this one: every path ends in blank there.
            sb = skipped_before[:, j : j + 1]
            gap = ~torch.isnan(sb)
            pb = torch.where(gap, torch.logaddexp(pb, pnb) + sb.nan_to_num(0.0), pb)
            pnb = pnb.masked_fill(gap, NEG_INF)
        ptot = torch.logaddexp(pb, pnb)
        live = ptot > NEG_INF

        # Stay: blank, or a repeat of the last token (the empty prefix has no last token).
        stay_pb = ptot + lp_t[:, blank : blank + 1]
        lp_last = lp_t.gather(1, last)
        stay_pnb = pnb + lp_last  # -inf for the empty prefix, whose pnb is -inf
        # Beam j's prefix minus its last token may be beam i's prefix: then "i + last_j" is j, and
        # that extension is merged into j's stay. Found by binary search of parent hashes.
        sorted_h, order = torch.sort(hsh.masked_fill(~live, dead_hash), dim=1)
        pos = torch.searchsorted(sorted_h, parent_hsh).clamp_max(K - 1)
        has = (sorted_h.gather(1, pos) == parent_hsh) & live & (plen > 0)
        mi = order.gather(1, pos)  # (B, K) the matching beam i for each j
        merged = torch.where(last.gather(1, mi) == last, pb.gather(1, mi), ptot.gather(1, mi)) + lp_last
        # Where the merged-in extension dominates, the back-pointer follows it (for timestamps).
        via_ext = has & (merged > torch.logaddexp(stay_pb, stay_pnb))
        stay_pnb = torch.where(has, torch.logaddexp(stay_pnb, merged), stay_pnb)

        # Extensions by the candidate tokens.
        if C < V - 1:
            cand_lp, cand = lp_t[:, 1:].topk(C, dim=1)
            cand = cand + 1
            tokpos = torch.full((B, V), -1, dtype=torch.int64, device=device)
            tokpos.scatter_(1, cand, cand_pos)
            cpos = tokpos.gather(1, last)
        else:
            cand, cand_lp = all_tokens, lp_t[:, 1:]
            cpos = last - 1
        # Extending by a token different from the last one continues every path; repeating the
        # last token as a new one needs a blank in between, so only pb continues there. Masks and
        # corrections are scatters into flat (B, K*C) rows (elementwise where/masked_fill on the
        # whole grid costs several times more on the CPU).
        ext_pnb = (ptot[:, :, None] + cand_lp[:, None, :]).reshape(B, K * C)
        rep_at = beam_base + cpos.clamp_min(0)
        rep_val = torch.where(cpos >= 0, pb + lp_last, ext_pnb.gather(1, rep_at))
        ext_pnb.scatter_(1, rep_at, rep_val)
        ext_extra = extra[:, :, None]
        auxes = []
        for s in scorers:
            delta, aux = s.extend(sstate, last, cand)
            ext_extra = ext_extra + delta
            auxes.append(aux)
        ext_extra = ext_extra.expand(B, K, C).reshape(B, K * C)
        # Stays, then extensions, then one spare column, written in place (no concatenation copy).
        torch.add(torch.logaddexp(stay_pb, stay_pnb), extra, out=scores[:, :K])
        torch.add(ext_pnb, ext_extra, out=scores[:, K:-1])
        # Extensions merged into another beam's stay are dropped (the last column absorbs no-ops).
        scores.scatter_(1, torch.where(has & (cpos >= 0), K + mi * C + cpos, K + K * C), NEG_INF)
        top, sel = scores[:, :-1].topk(K, dim=1, sorted=False)
        is_stay = sel < K
        ext_flat = (sel - K).clamp_min(0)
        src_beam = torch.where(is_stay, sel, ext_flat // C)
        tok = torch.where(is_stay, 0, cand.gather(1, ext_flat % C))
        stay_via_ext = is_stay & via_ext.gather(1, src_beam)
        bp_parent = torch.where(stay_via_ext, mi.gather(1, src_beam), src_beam)
        bp_token = torch.where(stay_via_ext, last.gather(1, src_beam), tok)
        dead = top == NEG_INF

        def pick(stay_val: torch.Tensor, ext_val: torch.Tensor) -> torch.Tensor:
            return torch.where(is_stay, stay_val.gather(1, src_beam), ext_val.reshape(B, K * C).gather(1, ext_flat))

        new_pb = stay_pb.gather(1, src_beam).masked_fill(~is_stay, NEG_INF)
        new_pnb = pick(stay_pnb, ext_pnb).masked_fill(dead, NEG_INF)
        new_extra = pick(extra, ext_extra).masked_fill(dead, 0.0)
        h_src = hsh.gather(1, src_beam)
        new_hsh = torch.where(is_stay, h_src, h_src * hash_mul + tok)
        new_parent = torch.where(is_stay, parent_hsh.gather(1, src_beam), h_src)
        new_last = torch.where(is_stay, last.gather(1, src_beam), tok)
        new_plen = plen.gather(1, src_beam) + (~is_stay).long()
        new_sstate: dict[str, torch.Tensor] = {}
        for s, aux in zip(scorers, auxes):
            new_sstate.update(s.advance(sstate, aux, src_beam, tok, ext_flat))

        if j < min_steps:  # every utterance still running
            pb, pnb, extra, hsh, parent_hsh = new_pb, new_pnb, new_extra, new_hsh, new_parent
            last, plen, sstate = new_last, new_plen, new_sstate
            back_parent.append(bp_parent)
            back_token.append(bp_token)
            continue
        active = (j < steps)[:, None]  # (B, 1); finished utterances keep their state
        pb = torch.where(active, new_pb, pb)
        pnb = torch.where(active, new_pnb, pnb)
        extra = torch.where(active, new_extra, extra)
        hsh = torch.where(active, new_hsh, hsh)
        parent_hsh = torch.where(active, new_parent, parent_hsh)
        last = torch.where(active, new_last, last)
        plen = torch.where(active, new_plen, plen)
        sstate = {k: torch.where(active, new_sstate[k], v) for k, v in sstate.items()}
        back_parent.append(torch.where(active, bp_parent, keep_idx))
        back_token.append(torch.where(active, bp_token, 0))

    unconstrained = torch.logaddexp(pb, pnb) + skipped_after[:, None] + extra
    total = unconstrained
    for s in scorers:
        total = total + s.final(sstate, last)
    # Where no surviving prefix meets the end constraints (every beam ends inside a lexicon word,
    # say), return the best prefixes as they stand rather than nothing.
    stuck = torch.isneginf(total).all(dim=1, keepdim=True)  # (B, 1)
    total = torch.where(stuck, unconstrained, total)
    n = max(1, min(int(nbest), K))
    best, order = total.topk(n, dim=1)  # (B, n)
    tokens = _backtrack(back_parent, back_token, order)
    return _hypotheses(lp, lengths, frames, best, tokens)


def _backtrack(back_parent: list[torch.Tensor], back_token: list[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """Follow back-pointers from beams ``idx`` (B, n): (B, n, T2) emitted token per step (0 = none)."""
    toks = []
    for parent, token in zip(reversed(back_parent), reversed(back_token)):
        toks.append(token.gather(1, idx))
        idx = parent.gather(1, idx)
    if not toks:
        return torch.zeros(idx.shape + (0,), dtype=torch.int64, device=idx.device)
    return torch.stack(toks[::-1], dim=2)


def _hypotheses(
    lp: torch.Tensor, lengths: torch.Tensor, frames: torch.Tensor, best: torch.Tensor, tokens: torch.Tensor
) -> list[list[Hypothesis]]:
    """Build Hypothesis objects on the host: tokens, spans (frames), confidences."""
    argmax = lp.argmax(-1)
    lp_c, argmax_c, frames_c, best_c, tokens_c, lengths_c = (
        t.cpu().numpy() for t in (lp, argmax, frames, best, tokens, lengths)
    )
    out: list[list[Hypothesis]] = []
    for b in range(best_c.shape[0]):
        n_frames = int(lengths_c[b])
        am = argmax_c[b].tolist()
        hyps = []
        for k in range(best_c.shape[1]):
            score = float(best_c[b, k])
            if score == NEG_INF:
                continue
            steps = tokens_c[b, k].nonzero()[0]
            toks = tokens_c[b, k, steps].tolist()
            starts = frames_c[b, steps].tolist()
            spans, confs = [], []
            for i, (t, s) in enumerate(zip(toks, starts)):
                stop = starts[i + 1] if i + 1 < len(starts) else n_frames
                e = s
                while e + 1 < stop and am[e + 1] == t:
                    e += 1
                spans.append((s, e))
                confs.append(math.exp(float(lp_c[b, s : e + 1, t].max())))
            hyps.append(
                Hypothesis(
                    tokens=toks, score=score, spans=spans,
                    confidence=sum(confs) / len(confs) if confs else 1.0, token_confidences=confs,
                )
            )
        out.append(hyps)
    return out
