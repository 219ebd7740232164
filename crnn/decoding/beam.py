"""Batched CTC prefix beam search with tensor ops: one call decodes the whole batch, on CPU or CUDA.

Each utterance keeps ``K`` distinct prefixes with blank / non-blank ending probabilities
(``pb``, ``pnb``). Per frame, every prefix either *stays* (blank, or a repeat of its last token) or
is *extended* by one of ``C`` candidate tokens. An extension can only coincide with another beam's
stay when that beam's prefix is this prefix plus one token, so equal prefixes are found by looking
up each beam's parent hash among the beam hashes (all pairs, or a sort and a binary search at wide
beams), merged, and the duplicate extension dropped. The loop runs over frames only (one
``_frame_step`` each); optional scorers (LM, lexicon, hotwords, grammar) add per-extension score
terms and carry their own per-beam state.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple, Protocol, Sequence

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



class _Beams(NamedTuple):
    """The search state, (B, K) each."""

    pb: torch.Tensor  # log-prob of the prefix's paths ending in blank
    pnb: torch.Tensor  # ... ending in its last token
    extra: torch.Tensor  # summed scorer terms
    hsh: torch.Tensor  # rolling hash of the prefix
    parent_hsh: torch.Tensor  # hash of the prefix without its last token
    last: torch.Tensor  # last token (0 for the empty prefix)
    plen: torch.Tensor  # prefix length


def _initial_beams(B: int, K: int, device: torch.device) -> _Beams:
    """Beam 0 holds the empty prefix (probability 1, ending in blank); the other K - 1 start dead."""
    pb = torch.full((B, K), NEG_INF, device=device)
    pb[:, 0] = 0.0
    zeros = torch.zeros(B, K, dtype=torch.int64, device=device)
    return _Beams(pb=pb, pnb=torch.full((B, K), NEG_INF, device=device), extra=torch.zeros(B, K, device=device),
                  hsh=zeros, parent_hsh=zeros, last=zeros, plen=zeros)


class _StepConstants(NamedTuple):
    keep_idx: torch.Tensor  # (B, K) arange
    hash_mul: torch.Tensor  # () int64
    all_tokens: torch.Tensor  # (B, V - 1) every non-blank token
    beam_base: torch.Tensor  # (B, K) flat offset of each beam's candidates in the (K * C) grid


DEAD_HASH = -(2**63)  # never a real prefix hash (probability 2**-64)


def _find_parents(hsh: torch.Tensor, parent_hsh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each beam j, the beam i whose hash is j's parent hash (hashes of live beams are unique).

    Args:
        hsh: (B, K) beam hashes (dead beams hold ``DEAD_HASH``). parent_hsh: (B, K).

    Returns:
        ``(found, i)``: (B, K) bool and (B, K) index (any value where not found).
    """
    K = hsh.size(1)
    if K <= 32:  # all pairs: a few fused comparisons beat sorting at small beams
        found, i = (parent_hsh[:, :, None] == hsh[:, None, :]).max(dim=2)  # over i of (B, K_j, K_i)
        return found, i
    sorted_h, order = torch.sort(hsh, dim=1)
    pos = torch.searchsorted(sorted_h, parent_hsh).clamp_max(K - 1)
    return sorted_h.gather(1, pos) == parent_hsh, order.gather(1, pos)


def _frame_step(
    lp_t: torch.Tensor,
    cand: torch.Tensor | None,
    cand_lp: torch.Tensor | None,
    gap: torch.Tensor | None,
    active: torch.Tensor | None,
    beams: _Beams,
    sstate: dict[str, torch.Tensor],
    scorers: Sequence[Scorer],
    consts: _StepConstants,
) -> tuple[_Beams, dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """One frame of the search.

    Args:
        lp_t: (B, V) this frame's log-posteriors.
        cand, cand_lp: (B, C) the tokens that may extend a prefix at this frame and their
            log-posteriors, or None for every non-blank token.
        gap: (B, 1) summed blank log-prob of skipped frames just before this one (``nan``: none),
            or None when no frame is skipped.
        active: (B, 1) which utterances still have this frame (None: all).
        beams, sstate: the search and scorer states.

    Returns:
        ``(beams, sstate, back_parent, back_token)``: the new states and the (B, K) back-pointers.
    """
    pb, pnb, extra, hsh, parent_hsh, last, plen = beams
    B, K = pb.shape
    if gap is not None:
        # Skipped pure-blank frames before this one: every path ends in blank there.
        has_gap = ~torch.isnan(gap)
        pb = torch.where(has_gap, torch.logaddexp(pb, pnb) + gap.nan_to_num(0.0), pb)
        pnb = pnb.masked_fill(has_gap, NEG_INF)
    ptot = torch.logaddexp(pb, pnb)
    live = ptot > NEG_INF

    # Stay: blank, or a repeat of the last token (the empty prefix has no last token).
    stay_pb = ptot + lp_t[:, 0:1]
    lp_last = lp_t.gather(1, last)
    stay_pnb = pnb + lp_last  # -inf for the empty prefix, whose pnb is -inf
    # Beam j's prefix minus its last token may be beam i's prefix: then "i + last_j" is j, and
    # that extension is merged into j's stay.
    has, mi = _find_parents(hsh.masked_fill(~live, DEAD_HASH), parent_hsh)
    has = has & live & (plen > 0)  # mi: (B, K) the matching beam i for each j
    merged = torch.where(last.gather(1, mi) == last, pb.gather(1, mi), ptot.gather(1, mi)) + lp_last
    # Where the merged-in extension dominates, the back-pointer follows it (for timestamps).
    via_ext = has & (merged > torch.logaddexp(stay_pb, stay_pnb))
    stay_pnb = torch.where(has, torch.logaddexp(stay_pnb, merged), stay_pnb)

    # Extensions by the candidate tokens.
    if cand is None:
        cand, cand_lp = consts.all_tokens, lp_t[:, 1:]
        cpos = last - 1  # (B, K) where each beam's last token sits among the candidates (-1: absent)
    else:
        found, cpos = (cand[:, None, :] == last[:, :, None]).to(torch.int8).max(dim=2)  # (B, K)
        cpos = cpos.masked_fill(found == 0, -1)
    C = cand.size(1)
    # Extending by a token different from the last one continues every path; repeating the
    # last token as a new one needs a blank in between, so only pb continues there. Masks and
    # corrections are scatters into flat (B, K*C) rows (elementwise where/masked_fill on the
    # whole grid costs several times more on the CPU).
    ext_pnb = (ptot[:, :, None] + cand_lp[:, None, :]).reshape(B, K * C)
    rep_at = consts.beam_base + cpos.clamp_min(0)
    rep_val = torch.where(cpos >= 0, pb + lp_last, ext_pnb.gather(1, rep_at))
    ext_pnb = ext_pnb.scatter(1, rep_at, rep_val)
    ext_extra = extra[:, :, None]
    auxes = []
    for s in scorers:
        delta, aux = s.extend(sstate, last, cand)
        ext_extra = ext_extra + delta
        auxes.append(aux)
    ext_extra = ext_extra.expand(B, K, C).reshape(B, K * C)
    # Stays, then extensions, then one spare column that absorbs the no-op drops below.
    scores = torch.cat(
        [torch.logaddexp(stay_pb, stay_pnb) + extra, ext_pnb + ext_extra, ext_pnb.new_full((B, 1), NEG_INF)], dim=1
    )
    # Extensions merged into another beam's stay are dropped.
    scores = scores.scatter(1, torch.where(has & (cpos >= 0), K + mi * C + cpos, K + K * C), NEG_INF)
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

    h_src = hsh.gather(1, src_beam)
    new = _Beams(
        pb=stay_pb.gather(1, src_beam).masked_fill(~is_stay, NEG_INF),
        pnb=pick(stay_pnb, ext_pnb).masked_fill(dead, NEG_INF),
        extra=pick(extra, ext_extra).masked_fill(dead, 0.0),
        hsh=torch.where(is_stay, h_src, h_src * consts.hash_mul + tok),
        parent_hsh=torch.where(is_stay, parent_hsh.gather(1, src_beam), h_src),
        last=torch.where(is_stay, last.gather(1, src_beam), tok),
        plen=plen.gather(1, src_beam) + (~is_stay).long(),
    )
    new_sstate: dict[str, torch.Tensor] = {}
    for s, aux in zip(scorers, auxes):
        new_sstate.update(s.advance(sstate, aux, src_beam, tok, ext_flat))
    if active is None:
        return new, new_sstate, bp_parent, bp_token
    # Finished utterances keep their state.
    kept = _Beams(*(torch.where(active, n, o) for n, o in zip(new, beams)))
    kept_sstate = {k: torch.where(active, new_sstate[k], v) for k, v in sstate.items()}
    return (kept, kept_sstate, torch.where(active, bp_parent, consts.keep_idx), torch.where(active, bp_token, 0))


class _GraphedFrameStep:
    """``_frame_step`` captured once as a CUDA graph and replayed for every frame.

    The eager step launches some 100-165 small kernels per frame (more with scorers), each costing more
    to launch than to run at decoding's sizes; a replay launches them as one graph. The graph reads its
    inputs from fixed buffers, so each frame copies the frame's inputs in and the new state back.
    """

    def __init__(self, lp_t, cand, cand_lp, gap, active, beams: _Beams, sstate: dict[str, torch.Tensor],
                 scorers: Sequence[Scorer], consts: _StepConstants):
        def buffer(t):
            return None if t is None else t.clone()

        self.lp_t, self.cand, self.cand_lp, self.gap, self.active = map(buffer, (lp_t, cand, cand_lp, gap, active))
        self.beams = _Beams(*(t.clone() for t in beams))
        self.sstate = {k: v.clone() for k, v in sstate.items()}

        def step():
            return _frame_step(self.lp_t, self.cand, self.cand_lp, self.gap, self.active, self.beams, self.sstate,
                               scorers, consts)

        side = torch.cuda.Stream(device=lp_t.device)
        side.wait_stream(torch.cuda.current_stream(lp_t.device))
        with torch.cuda.stream(side):
            step()  # warm-up outside the capture: lazy initialisation, library handles
        torch.cuda.current_stream(lp_t.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = step()

    def __call__(self, lp_t, cand, cand_lp, gap, active) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: the search state advances in place; returns the frame's (B, K) back-pointers."""
        for buf, new in ((self.lp_t, lp_t), (self.cand, cand), (self.cand_lp, cand_lp), (self.gap, gap),
                         (self.active, active)):
            if buf is not None:
                buf.copy_(new)
        self.graph.replay()
        new_beams, new_sstate, bp_parent, bp_token = self.out
        for buf, new in zip(self.beams, new_beams):
            buf.copy_(new)
        for k, buf in self.sstate.items():
            buf.copy_(new_sstate[k])
        return bp_parent.clone(), bp_token.clone()


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
    cuda_graph: bool = False,
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
        cuda_graph: on CUDA, replay the frame step as a captured CUDA graph (same results; falls back to
            the eager loop, with a warning, where capture fails). Ignored on the CPU. (Default: False)

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

    beams = _initial_beams(B, K, device)
    sstate: dict[str, torch.Tensor] = {}
    for s in scorers:
        sstate.update(s.init_state(B, K, device))
    back_parent: list[torch.Tensor] = []
    back_token: list[torch.Tensor] = []
    consts = _StepConstants(
        keep_idx=torch.arange(K, device=device).expand(B, K),
        hash_mul=torch.tensor(HASH_MUL, dtype=torch.int64, device=device),
        all_tokens=torch.arange(1, V, device=device).expand(B, V - 1),
        beam_base=(torch.arange(K, device=device) * C).expand(B, K),  # flat offset of each beam's candidates
    )

    min_steps = int(steps.min()) if B else 0
    # The searched frames, in order (a view when none is skipped).
    lp_steps = lp if blank_skip is None else lp.gather(1, frames[:, :, None].expand(B, T2, V))
    cand_all = cand_lp_all = None
    if C < V - 1:
        # Each frame's C most probable non-blank tokens, chosen for all frames at once.
        cand_lp_all, cand_all = lp_steps[:, :, 1:].topk(C, dim=2)
        cand_all = cand_all + 1
    graphed: _GraphedFrameStep | None = None
    for j in range(T2):
        gap = skipped_before[:, j : j + 1] if blank_skip is not None else None
        active = None if j < min_steps else (j < steps)[:, None]
        cand = cand_lp = None
        if cand_all is not None:
            cand, cand_lp = cand_all[:, j], cand_lp_all[:, j]
        if cuda_graph and device.type == "cuda" and j == 0:
            graphed = _capture(lp_steps[:, j], cand, cand_lp, gap, (j < steps)[:, None], beams, sstate, scorers, consts)
        if graphed is not None:
            bp_parent, bp_token = graphed(lp_steps[:, j], cand, cand_lp, gap, (j < steps)[:, None])
        else:
            beams, sstate, bp_parent, bp_token = _frame_step(
                lp_steps[:, j], cand, cand_lp, gap, active, beams, sstate, scorers, consts
            )
        back_parent.append(bp_parent)
        back_token.append(bp_token)
    if graphed is not None:
        beams, sstate = graphed.beams, graphed.sstate

    pb, pnb, extra, last = beams.pb, beams.pnb, beams.extra, beams.last
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


def _capture(*args) -> _GraphedFrameStep | None:
    """Capture the frame step as a CUDA graph, or warn and return None (the eager loop runs instead)."""
    try:
        return _GraphedFrameStep(*args)
    except Exception as e:  # an op that cannot be captured, an old driver: never fail the decode for it
        warnings.warn(f"CUDA graph capture of the beam search failed ({type(e).__name__}: {e}); "
                      "decoding without it", RuntimeWarning, stacklevel=3)
        return None


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
