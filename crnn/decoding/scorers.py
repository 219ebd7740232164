"""Score terms for the batched beam search (see ``crnn.decoding.beam.Scorer``): LM fusion at word
boundaries or at every token, lexicon constraints, hotword bonuses and a label grammar.

Every scorer keeps its tables on the CPU and copies them once per device it is used on.
"""
from __future__ import annotations

import torch

from crnn.tokenizer import Tokenizer
from crnn.decoding.beam import HASH_MUL
from crnn.decoding.constraints import Grammar, Hotwords, Lexicon, trie_step
from crnn.decoding.lm import EOS, SPACE, UNK, TensorLM, lookup

NEG_INF = float("-inf")


class _DeviceTables:
    """Copies named CPU tensors to a device once and keeps them."""

    def __init__(self, **tables: torch.Tensor):
        self._cpu = tables
        self._cache: dict[torch.device, dict[str, torch.Tensor]] = {}

    def on(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._cache:
            self._cache[device] = {k: v.to(device) for k, v in self._cpu.items()}
        return self._cache[device]


def token_hash(ids: list[int]) -> int:
    """The search's rolling hash of a token sequence, as a signed int64 (wrapping like torch)."""
    h = 0
    for t in ids:
        h = (h * HASH_MUL + t) % (1 << 64)
    return h - (1 << 64) if h >= 1 << 63 else h


class TokenLMScorer:
    """An n-gram over tokens (a character LM, or a label LM), applied at every emitted token.

    Adds ``alpha * ln p(token | history) + beta`` per token and ``alpha * ln p(</s> | history)`` at
    the end.

    Args:
        lm: the compiled model; its words are token symbols (``<space>`` for the space).
        tokenizer: the model's vocabulary.
        alpha: LM weight. beta: per-token bonus.
    """

    def __init__(self, lm: TensorLM, tokenizer: Tokenizer, alpha: float, beta: float):
        self.lm, self.alpha, self.beta = lm, alpha, beta
        words = [lm.word_id.get(SPACE if s == " " else s, lm.unk) for s in tokenizer.symbols]
        self.tables = _DeviceTables(token_word=torch.tensor([lm.unk] + words, dtype=torch.int64))

    def init_state(self, B: int, K: int, device: torch.device) -> dict[str, torch.Tensor]:
        return {"tlm": torch.full((B, K), self.lm.bos_state, dtype=torch.int64, device=device)}

    def extend(self, state, last, cand):
        word = lookup(self.tables.on(cand.device)["token_word"], cand)  # (B, C)
        s = state["tlm"][:, :, None].expand(-1, -1, cand.size(1))
        lp, nxt = self.lm.score(s, word[:, None, :].expand_as(s))
        return self.alpha * lp + self.beta, nxt

    def advance(self, state, aux, src, tok, ext):
        B = src.size(0)
        return {"tlm": torch.where(tok == 0, state["tlm"].gather(1, src), aux.reshape(B, -1).gather(1, ext))}

    def final(self, state, last):
        s = state["tlm"]
        return self.alpha * self.lm.score(s, torch.full_like(s, self.lm.eos))[0]


class WordScorer:
    """Word-level terms for character or subword vocabularies: a lexicon constraint and/or a word LM.

    With characters a word ends where the separator (space) token is emitted; with subwords where
    the next word's first piece (one starting with ``▁``) is emitted; and at the end of the utterance.
    With a lexicon, a prefix may only spell a path of its trie and a word may only end at a listed
    word; without one, words are identified by the hash of their tokens and unknown ones score as
    ``<unk>`` (a subword word is looked up under each of its ``Tokenizer.spellings``). With an LM,
    each completed word adds ``alpha * ln p(word | history) + beta``. Empty words (leading or double
    spaces) are not allowed.

    Args:
        tokenizer: a character tokenizer with a space symbol, or a subword tokenizer.
        lm: word LM or None. lexicon: Lexicon or None. alpha, beta: LM weight and word bonus.
    """

    def __init__(
        self, tokenizer: Tokenizer, lm: TensorLM | None = None, lexicon: Lexicon | None = None,
        alpha: float = 0.5, beta: float = 1.0,
    ):
        sep, starts = tokenizer.word_separator, sorted(tokenizer.word_starts)
        if sep is None and not starts:
            raise ValueError("word-level LM or lexicon needs a character vocabulary with a space symbol "
                             "or a subword vocabulary")
        if lm is None and lexicon is None:
            raise ValueError("WordScorer needs an LM, a lexicon or both")
        self.sep, self.V = (sep if sep is not None else -1), len(tokenizer)
        self.subword = sep is None
        self.lm, self.lexicon, self.alpha, self.beta = lm, lexicon, alpha, beta
        is_start = torch.zeros(self.V, dtype=torch.bool)
        is_start[starts] = True
        tables: dict[str, torch.Tensor] = {"is_start": is_start}
        if lexicon is not None:
            may_end = lexicon.word >= 0
            may_end[0] = True  # the root: before the first word
            tables.update(edge_keys=lexicon.edge_keys, edge_child=lexicon.edge_child, root_child=lexicon.root_child,
                          complete=lexicon.word >= 0, may_end=may_end)
            if lm is not None:
                ids = torch.tensor([lm.word_id.get(w, lm.unk) for w in lexicon.words], dtype=torch.int64)
                tables["node_lm"] = torch.where(lexicon.word >= 0, ids[lexicon.word.clamp_min(0)], lm.unk)
        elif lm is not None:
            # Hash -> LM word id, for words spellable in this vocabulary.
            pairs = {}
            words = [(w, i) for w, i in lm.word_id.items() if w not in (EOS, UNK, "<s>")]
            for (w, i), found in zip(words, tokenizer.spellings_many([w for w, _ in words], 4)):
                for ids in found or ():
                    pairs.setdefault(token_hash(ids), i)
            keys = torch.tensor(sorted(pairs), dtype=torch.int64)
            tables["hash_keys"] = keys
            tables["hash_word"] = torch.tensor([pairs[k] for k in sorted(pairs)], dtype=torch.int64)
        self.tables = _DeviceTables(**tables)

    def init_state(self, B, K, device):
        z = torch.zeros((B, K), dtype=torch.int64, device=device)
        st = {"w_node": z} if self.lexicon is not None else {"w_len": z, "w_hash": z}
        if self.lm is not None:
            st["w_lm"] = torch.full((B, K), self.lm.bos_state, dtype=torch.int64, device=device)
        return st

    def _child(self, tab, node: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
        """The lexicon node after ``tok`` from ``node`` (broadcast), or -1 where the lexicon forbids it."""
        node, tok = torch.broadcast_tensors(node, tok)
        child = trie_step(tab["edge_keys"], tab["edge_child"], self.V, node, tok)
        if self.subword:
            # A word's first piece may follow only a complete word (or the start): it jumps to where
            # that piece leads from the root.
            jump = torch.where(lookup(tab["may_end"], node), lookup(tab["root_child"], tok), -1)
            return torch.where(lookup(tab["is_start"], tok), jump, child)
        # The separator leads from a word's last node back to the root; elsewhere it is forbidden.
        back = torch.where(lookup(tab["complete"], node), 0, -1)
        return torch.where(tok == self.sep, back, child)

    def _word_id(self, tab, state) -> torch.Tensor:
        """(B, K) LM word id of each beam's current partial word."""
        if self.lexicon is not None:
            return lookup(tab["node_lm"], state["w_node"])
        keys = tab["hash_keys"]
        if keys.numel() == 0:
            return torch.full_like(state["w_hash"], self.lm.unk)
        pos = torch.searchsorted(keys, state["w_hash"]).clamp_max(keys.numel() - 1)
        return torch.where(lookup(keys, pos) == state["w_hash"], lookup(tab["hash_word"], pos), self.lm.unk)

    def _complete(self, tab, state) -> torch.Tensor:
        """(B, K) whether the partial word may end here."""
        if self.lexicon is not None:
            return lookup(tab["complete"], state["w_node"])
        return state["w_len"] > 0

    def _pending(self, state) -> torch.Tensor:
        """(B, K) whether a word has been started and not yet closed."""
        return state["w_node"] > 0 if self.lexicon is not None else state["w_len"] > 0

    def extend(self, state, last, cand):
        tab = self.tables.on(cand.device)
        if self.subword:  # the next word's first piece closes the pending word
            closes = lookup(tab["is_start"], cand)[:, None, :] & self._pending(state)[:, :, None]  # (B, K, C)
        else:
            closes = (cand == self.sep)[:, None, :]  # (B, 1, C)
        lp = nxt = None
        if self.lm is not None:
            lp, nxt = self.lm.score(state["w_lm"], self._word_id(tab, state))
            lp = self.alpha * lp + self.beta  # (B, K) the term if the word ended now
        if self.lexicon is not None:
            child = self._child(tab, state["w_node"][:, :, None], cand[:, None, :])  # (B, K, C)
            delta = torch.where(child >= 0, 0.0, NEG_INF)
            if lp is not None:  # LM terms are finite, so a 0/1 product is safe
                delta = delta + lp[:, :, None] * closes.to(delta.dtype)
            return delta, nxt
        if self.subword:
            return (torch.where(closes, lp[:, :, None], 0.0) if lp is not None
                    else torch.zeros(closes.shape, device=cand.device)), nxt
        sep_term = torch.where(state["w_len"] > 0, 0.0 if lp is None else lp, NEG_INF)  # no empty words
        return torch.where(closes, sep_term[:, :, None], 0.0), nxt

    def advance(self, state, aux, src, tok, ext):
        stay = tok == 0
        new: dict[str, torch.Tensor] = {}
        if self.subword:
            starts = lookup(self.tables.on(tok.device)["is_start"], tok)
            closes = starts & self._pending({k: v.gather(1, src) for k, v in state.items()})
        else:
            starts = closes = tok == self.sep
        if self.lexicon is not None:
            node = state["w_node"].gather(1, src)
            child = self._child(self.tables.on(tok.device), node, tok).clamp_min(0)
            new["w_node"] = torch.where(stay, node, child)
        else:
            n, h = state["w_len"].gather(1, src), state["w_hash"].gather(1, src)
            # A separator empties the word; a subword word-start piece begins a new one.
            first = 1 if self.subword else 0
            new["w_len"] = torch.where(stay, n, torch.where(starts, first, n + 1))
            new["w_hash"] = torch.where(stay, h, torch.where(starts, tok * first, h * HASH_MUL + tok))
        if self.lm is not None:
            new["w_lm"] = torch.where(closes, aux.gather(1, src), state["w_lm"].gather(1, src))
        return new

    def final(self, state, last):
        tab = self.tables.on(last.device)
        # A word not yet closed by a space (or by the next word's first piece).
        pending = self._pending(state)
        ok = ~pending | self._complete(tab, state)
        out = torch.zeros(last.shape, device=last.device).masked_fill(~ok, NEG_INF)
        if self.lm is not None:
            lp, nxt = self.lm.score(state["w_lm"], self._word_id(tab, state))
            s = torch.where(pending, nxt, state["w_lm"])
            out = out + torch.where(pending, self.alpha * lp + self.beta, 0.0)
            out = out + self.alpha * self.lm.score(s, torch.full_like(s, self.lm.eos))[0]
        return out


class HotwordScorer:
    """Bonus for tokens inside listed words/phrases, kept only when the phrase completes."""

    def __init__(self, hotwords: Hotwords):
        self.V = hotwords.goto.size(1)
        self.tables = _DeviceTables(
            goto=hotwords.goto.flatten(), bonus=hotwords.bonus.flatten(), potential=hotwords.potential
        )

    def init_state(self, B, K, device):
        return {"hot": torch.zeros((B, K), dtype=torch.int64, device=device)}

    def extend(self, state, last, cand):
        tab = self.tables.on(cand.device)
        return lookup(tab["bonus"], state["hot"][:, :, None] * self.V + cand[:, None, :]), None

    def advance(self, state, aux, src, tok, ext):
        h = state["hot"].gather(1, src)
        goto = lookup(self.tables.on(tok.device)["goto"], h * self.V + tok)
        return {"hot": torch.where(tok == 0, h, goto)}

    def final(self, state, last):
        return -lookup(self.tables.on(last.device)["potential"], state["hot"])


class GrammarScorer:
    """Forbids token successions a Grammar does not allow (and endings it does not allow)."""

    def __init__(self, grammar: Grammar):
        self.V = grammar.allowed.size(1)
        self.tables = _DeviceTables(allowed=grammar.allowed.flatten(), final=grammar.final)

    def init_state(self, B, K, device):
        return {}

    def extend(self, state, last, cand):
        ok = lookup(self.tables.on(cand.device)["allowed"], last[:, :, None] * self.V + cand[:, None, :])
        return torch.where(ok, 0.0, NEG_INF), None

    def advance(self, state, aux, src, tok, ext):
        return {}

    def final(self, state, last):
        ok = lookup(self.tables.on(last.device)["final"], last)
        return torch.zeros(ok.shape, device=last.device).masked_fill(~ok, NEG_INF)


def lm_unit(lm: TensorLM, tokenizer: Tokenizer) -> str:
    """``"token"`` if the LM's words are the vocabulary's symbols (labels, or characters with
    ``<space>``), else ``"word"``."""
    if tokenizer.kind == "label":
        return "token"
    symbols = {SPACE if s == " " else s for s in tokenizer.symbols}
    words = {w for w in lm.words if w not in ("<s>", EOS, UNK)}
    return "token" if words and words <= symbols else "word"
