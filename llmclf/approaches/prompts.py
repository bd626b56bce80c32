"""Prompts and answers of the instruction approach, as token ids: building, truncating, parsing, constraining.

A prompt is the filled `prompt_template` (slots {task_description}, {labels}, {text}), wrapped in the tokenizer's
chat template as one user message with the generation prompt when the tokenizer has one, else the plain text
followed by "\\nAnswer: ". It is tokenized in three parts, prefix + text + suffix, so that a long text is cut
*inside* the prompt to fit `max_length` together with the longest answer: the instruction after the text and the
answer are never lost. Whitespace at a part boundary goes with the following part (" text", " label"), which is
how byte-level BPE tokenizers would have split the joined string.

An answer is token ids too, built from pieces that are tokenized once each: the first label (with any leading
whitespace the prompt left over), then `answer_separator + label` for every further label, then EOS. Training
targets, constrained decoding and label scoring all use these same pieces, so the three agree on what an answer
is; free generation is decoded to text and parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_TEXT_MARK = "\ue000LLMCLF_TEXT\ue000"  # a private-use character: no template or text contains it


def verbalize_labels(labels: list[str], verbalizer: str, descriptions: dict[str, str] | None) -> str:
    """What the {labels} slot shows: the names, comma-separated, or one "- name: description" line each."""
    if verbalizer == "names":
        return ", ".join(labels)
    if verbalizer == "descriptions":
        missing = [l for l in labels if not (descriptions or {}).get(l)]
        if missing:
            raise ValueError(f"label_verbalizer='descriptions' but the task has no description for {missing[:10]}"
                             f"{' ...' if len(missing) > 10 else ''}; use label_verbalizer='names'")
        return "\n" + "\n".join(f"- {l}: {descriptions[l]}" for l in labels)
    raise ValueError(f"label_verbalizer must be 'names' or 'descriptions', got {verbalizer!r}")


def _split_trailing_spaces(s: str) -> tuple[str, str]:
    stripped = s.rstrip(" ")
    return stripped, s[len(stripped):]


@dataclass
class PromptBuilder:
    """Token ids of prompts and answers for one task and tokenizer. See the module docstring."""

    tokenizer: object
    labels: list[str]
    multi_label: bool
    task_description: str
    prompt_template: str
    label_verbalizer: str = "names"
    label_descriptions: dict[str, str] | None = None
    answer_separator: str = "; "
    max_length: int = 128
    use_chat_template: bool | None = None  # None: when the tokenizer has one
    answer_reserve: int = field(init=False)  # tokens kept free for the answer; see set_answer_reserve

    def __post_init__(self):
        tok = self.tokenizer
        if tok.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token: an answer could not end")
        self.eos_id = tok.eos_token_id
        if self.use_chat_template is None:
            self.use_chat_template = bool(getattr(tok, "chat_template", None))
        filled = self.prompt_template.format(
            task_description=self.task_description,
            labels=verbalize_labels(self.labels, self.label_verbalizer, self.label_descriptions),
            text=_TEXT_MARK)
        if self.use_chat_template:
            rendered = tok.apply_chat_template([{"role": "user", "content": filled}], tokenize=False,
                                               add_generation_prompt=True)
        else:
            rendered = filled + "\nAnswer: "
        if rendered.count(_TEXT_MARK) != 1:
            raise ValueError("the chat template dropped or repeated the {text} slot")
        prefix, suffix = rendered.split(_TEXT_MARK)
        prefix, self.text_lead = _split_trailing_spaces(prefix)
        suffix, self.answer_lead = _split_trailing_spaces(suffix)
        # A chat template writes its own BOS into the text; a plain prompt gets the tokenizer's special tokens.
        self.prefix_ids = tok(prefix, add_special_tokens=not self.use_chat_template)["input_ids"]
        self.suffix_ids = tok(suffix, add_special_tokens=False)["input_ids"]
        self.first_pieces = [self._ids(self.answer_lead + l) for l in self.labels]
        self.next_pieces = [self._ids(self.answer_separator + l) for l in self.labels] if self.multi_label else None
        seen: dict[tuple, int] = {}
        for j, piece in enumerate(self.first_pieces):
            if tuple(piece) in seen:  # e.g. both unknown words of a small vocabulary: no mode could tell them apart
                raise ValueError(f"labels {self.labels[seen[tuple(piece)]]!r} and {self.labels[j]!r} tokenize to the "
                                 f"same ids {piece}; rename them or use a model whose tokenizer knows them")
            seen[tuple(piece)] = j
        self.set_answer_reserve()

    def _ids(self, s: str) -> list[int]:
        ids = self.tokenizer(s, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"{s!r} tokenizes to nothing")
        return ids

    # ---- answers

    def answer_ids(self, label_indices) -> list[int]:
        """The answer for a set of labels: in the task's label order, separated, ending with EOS."""
        idx = sorted(set(int(i) for i in label_indices))
        if not idx:
            raise ValueError("an answer needs at least one label")
        if len(idx) > 1 and not self.multi_label:
            raise ValueError("a single-label answer has exactly one label")
        ids = list(self.first_pieces[idx[0]])
        for j in idx[1:]:
            ids += self.next_pieces[j]
        return ids + [self.eos_id]

    def answer_text(self, label_indices) -> str:
        return self.answer_separator.join(self.labels[j] for j in sorted(set(label_indices)))

    def set_answer_reserve(self, label_sets=None) -> int:
        """Tokens reserved for the answer when a text is cut: the longest single-label answer, or for multi-label
        the longest answer among `label_sets` (the training set's; every label at once when none are given)."""
        if not self.multi_label:
            self.answer_reserve = max(len(p) for p in self.first_pieces) + 1
        elif label_sets is None:
            self.answer_reserve = len(self.answer_ids(range(len(self.labels))))
        else:
            self.answer_reserve = max(len(self.answer_ids(s)) for s in label_sets if len(s))
        return self.answer_reserve

    # ---- prompts

    @property
    def text_budget(self) -> int:
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids) - self.answer_reserve
        if budget < 1:
            raise ValueError(
                f"max_length={self.max_length} leaves no room for the text: the prompt scaffold takes "
                f"{len(self.prefix_ids) + len(self.suffix_ids)} tokens and the longest answer {self.answer_reserve}; "
                f"raise max_length to at least {self.max_length - budget + 16} or shorten the prompt")
        return budget

    def prompt_ids(self, texts: list[str]) -> list[list[int]]:
        """Each text tokenized alone, cut to the text budget, between the prompt's prefix and suffix."""
        budget = self.text_budget
        # verbose=False: the whole text is tokenized before it is cut, so "longer than the maximum" is expected
        enc = self.tokenizer([self.text_lead + t.strip() for t in texts], add_special_tokens=False,
                             verbose=False)["input_ids"]
        return [self.prefix_ids + ids[:budget] + self.suffix_ids for ids in enc]

    def training_example(self, text: str, label_indices) -> dict:
        """input_ids = prompt + answer; labels = -100 over the prompt, the answer's ids (EOS included) after it.

        The mask comes from positions, never from pad ids: with pad == eos a mask from ids would drop the EOS."""
        prompt = self.prompt_ids([text])[0]
        answer = self.answer_ids(label_indices)
        return {"input_ids": prompt + answer, "attention_mask": [1] * (len(prompt) + len(answer)),
                "labels": [-100] * len(prompt) + answer}

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def constraint(self) -> "AnswerConstraint":
        return AnswerConstraint(self.first_pieces, self.next_pieces, self.eos_id)


# ---------------------------------------------------------------------------------------------------------------
# parsing free text


def parse_label(text: str, labels: list[str]) -> int | None:
    """A label index from generated text, or None for an invalid output: an exact match, then a case-insensitive
    one, then the longest label contained in the text (case-insensitive).

    The longest contained label wins over the labels inside it ("technology" over "tech"), not over other labels:
    an output naming several unrelated labels ("Categories: business, politics", an echo of the prompt) is
    ambiguous, so invalid, rather than read as whichever label happens to be longest."""
    s = text.strip()
    if s in labels:
        return labels.index(s)
    low = s.lower()
    lowered = [l.lower() for l in labels]
    if low in lowered:
        return lowered.index(low)
    found = [j for j, l in enumerate(lowered) if l and l in low]
    longest = [j for j in found if not any(lowered[j] != lowered[k] and lowered[j] in lowered[k] for k in found)]
    return longest[0] if len(longest) == 1 else None


def parse_answer(text: str, labels: list[str], multi_label: bool, separator: str = "; ") -> list[int] | None:
    """Label indices from generated text, or None for an invalid output.

    Single-label: `parse_label`. Multi-label: the text is split on the separator (its stripped form, so "a;b" and
    "a ; b" split too), empty parts are ignored, every part is parsed with `parse_label`; one unparseable part, or
    no part at all, makes the whole output invalid."""
    if not multi_label:
        j = parse_label(text, labels)
        return None if j is None else [j]
    sep = separator.strip() or separator
    parts = [p for p in text.split(sep) if p.strip()]
    if not parts:
        return None
    out = []
    for p in parts:
        j = parse_label(p, labels)
        if j is None:
            return None
        out.append(j)
    return sorted(set(out))


# ---------------------------------------------------------------------------------------------------------------
# constrained decoding


class _Node:
    __slots__ = ("children", "ends", "max_label")

    def __init__(self):
        self.children: dict[int, _Node] = {}
        self.ends: list[int] = []  # labels whose piece ends here
        self.max_label = -1  # the largest label whose piece passes through here


def _trie(pieces: list[list[int]]) -> _Node:
    root = _Node()
    for label, ids in enumerate(pieces):
        node = root
        node.max_label = max(node.max_label, label)
        for t in ids:
            node = node.children.setdefault(t, _Node())
            node.max_label = max(node.max_label, label)
        node.ends.append(label)
    return root


class AnswerConstraint:
    """Which tokens may come next so that the output is a valid answer: a prefix tree over the labels' pieces.

    Single-label: one first piece, then EOS. Multi-label: a first piece, then any number of `separator + label`
    pieces of ever larger label index (the task's order, no repeats), then EOS. One piece may be a prefix of
    another ("tech", "technology"), so the walk keeps every state the tokens so far are consistent with.
    """

    def __init__(self, first_pieces: list[list[int]], next_pieces: list[list[int]] | None, eos_id: int):
        self.first, self.next = _trie(first_pieces), (_trie(next_pieces) if next_pieces else None)
        self.eos_id = eos_id

    def _initial(self):
        # a state: (trie node, the last completed label, labels so far); -1 at the start
        return [(self.first, -1, ())]

    def _finishes(self, node, last):
        return [j for j in node.ends if j > last]

    def _step(self, states, token):
        out = []
        for node, last, done in states:
            child = node.children.get(token)
            if child is not None and child.max_label > last:
                out.append((child, last, done))
            for j in self._finishes(node, last):
                if token == self.eos_id:
                    out.append((None, j, done + (j,)))
                elif self.next is not None:
                    child = self.next.children.get(token)
                    if child is not None and child.max_label > j:
                        out.append((child, j, done + (j,)))
        return out

    def _walk(self, tokens):
        states = self._initial()
        for t in tokens:
            states = [s for s in states if s[0] is not None]  # nothing follows EOS
            states = self._step(states, int(t))
            if not states:
                return []
        return states

    def allowed(self, tokens) -> list[int]:
        """Tokens that may follow `tokens` (the answer generated so far); [eos] once the answer is complete."""
        allowed = set()
        for node, last, _ in self._walk(tokens):
            if node is None:
                return [self.eos_id]
            allowed.update(t for t, c in node.children.items() if c.max_label > last)
            if self._finishes(node, last):
                allowed.add(self.eos_id)
                if self.next is not None:
                    j = min(self._finishes(node, last))
                    allowed.update(t for t, c in self.next.children.items() if c.max_label > j)
        return sorted(allowed) or [self.eos_id]

    def labels_of(self, tokens) -> list[int] | None:
        """The labels of a complete answer (ending with EOS, or with a completed piece); None if incomplete."""
        states = self._walk(tokens)
        for node, last, done in states:
            if node is None:
                return list(done)
        for node, last, done in states:
            fin = self._finishes(node, last)
            if fin:
                return list(done) + [fin[0]]
        return None
