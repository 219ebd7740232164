"""Best-path (greedy) CTC decoding, batched with tensor ops."""
from __future__ import annotations

import torch

from crnn.decoding.hypothesis import Hypothesis


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[Hypothesis]:
    """Take the most probable token per frame, merge repeats, drop blanks.

    Args:
        log_probs: (B, T, V) log-posteriors.
        lengths: (B,) valid frames per utterance.
        blank: blank token id. (Default: 0)

    Returns:
        One Hypothesis per utterance; ``score`` is the log-probability of the best path (not the
        labeling), ``spans`` the frames each token occupied, ``confidence`` the mean per-token
        max posterior.
    """
    B, T, _ = log_probs.shape
    best_lp, best = log_probs.detach().float().max(dim=-1)  # (B, T)
    valid = torch.arange(T, device=log_probs.device)[None, :] < lengths.to(log_probs.device)[:, None]
    prev = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    starts = valid & (best != blank) & (best != prev)  # (B, T) first frame of each emitted token
    # One transfer to the host for the whole batch.
    best_c, best_lp_c, valid_c, starts_c = (t.cpu() for t in (best, best_lp, valid, starts))
    path_scores = (best_lp_c * valid_c).sum(dim=1)
    out: list[Hypothesis] = []
    for b in range(B):
        n = int(valid_c[b].sum())
        ids = best_c[b, :n].tolist()
        lps = best_lp_c[b, :n]
        start_frames = starts_c[b, :n].nonzero().flatten().tolist()
        tokens, spans, confs = [], [], []
        for s in start_frames:
            e = s
            while e + 1 < n and ids[e + 1] == ids[s]:
                e += 1
            tokens.append(ids[s])
            spans.append((s, e))
            confs.append(float(lps[s : e + 1].max().exp()))
        out.append(
            Hypothesis(
                tokens=tokens,
                score=float(path_scores[b]),
                spans=spans,
                confidence=sum(confs) / len(confs) if confs else 1.0,
                token_confidences=confs,
            )
        )
    return out
