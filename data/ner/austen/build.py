"""Builds the silver Austen NER set (IOB2; PER / LOC / MISC) from data/corpus/austen.txt.

Run from the repository root (standard library + the repository's ``tasks`` package):

    python data/ner/austen/build.py              # writes train/validation/test.txt, stats.json
    python data/ner/austen/build.py --sample 150 # also prints a seeded sample (seed 0) of
                                                 # validation+test sentences, entities in [TYPE ...]

What it does (see README.md next to this file):

* Split: the chapters of ``tasks.pretraining.corpus_split_documents(corpus, split, 0.05)``,
  the same held-out chapters as the word-level biLM task (``tasks/bilm.py``). ``train``:
  every 5th train chapter in corpus order (the 1st, 6th, 11th, ...), whole chapters;
  ``validation`` / ``test``: the held-out chapters, alternately in corpus order (1st, 3rd,
  ... -> validation; 2nd, 4th, ... -> test), all their sentences.
* Each corpus line (a sentence) is tokenised with ``tasks.bilm.tokenize``; empty sentences
  and sentences of more than 60 tokens are left out (the latter counted in stats.json).
* Labels, left to right, longest match first:
  1. unless a gazetteer entry of two or more tokens starts there ("Sir Charles
     Grandison", the novel, is MISC), a title (gazetteers/titles.txt: Mr, Mrs, Miss,
     Lady, Sir, Colonel, ...; chained titles and a "." token after them stay O) followed
     by capitalised words: those words are PER (up to and including a possessive
     token; the particles of a known name, e.g. "de Bourgh", come from PER.txt);
  2. a gazetteer entry (gazetteers/PER.txt, LOC.txt, MISC.txt; O.txt lists sequences that
     are never entities), compared token by token, case-sensitive, with Austen's
     ``_italics_`` underscores ignored and a possessive "'s" allowed on the last token;
  3. a run of two or more capitalised tokens ending in a place head
     (gazetteers/place_heads.txt: Street, Place, Park, Hall, ...) is LOC;
  the longest of 2 and 3 wins (a tie goes to the gazetteer). A PER match absorbs the PER
  names right after it ("Frank" + "Churchill"). A one-token gazetteer match at a capital
  position (sentence start, after . ! ? : ; or a quotation mark) is dropped when the word
  is more often a lowercase common word than a mid-sentence capitalised one in the
  whole corpus (e.g. "Deal", the town, vs "Deal ..." at a sentence start); such a word
  cannot start a place run there either ("Quit Kellynch Hall" -> "Kellynch Hall").
  A capitals-only word of the gazetteers ("GARDINER", in a letter) is read as "Gardiner".
* The build fails if a capitalised word occurring at least 3 times away from capital
  positions is in no gazetteer, title, head or reviewed list (gazetteers/reviewed_O.txt),
  so every frequent capitalised word has been decided by hand.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, ROOT)

from tasks.bilm import tokenize  # noqa: E402
from tasks.pretraining import corpus_split_documents  # noqa: E402

CORPUS = os.path.join(ROOT, "data", "corpus", "austen.txt")
GAZ = os.path.join(HERE, "gazetteers")
VALIDATION_FRACTION = 0.05  # tasks.bilm.DEFAULT_VALIDATION_FRACTION
TRAIN_EVERY = 5
MAX_TOKENS = 60
MIN_REVIEW_COUNT = 3
TYPES = ("PER", "LOC", "MISC")
# Sentence-end marks after which a capitalised word may be capitalised for position only.
_ENDS = frozenset(".!?:;")
_QUOTES = frozenset("\"'\u201c\u201d\u2018\u2019")
_ABBREVIATIONS = frozenset({"Mr", "Mrs", "Dr", "St", "Messrs", "Ms", "Lieut", "Rev", "Hon"})
# Capitalised words that never start or continue a name after a title or in a place run.
_STOP = frozenset(
    {
        "I",
        "I'm",
        "I'll",
        "I've",
        "I'd",
        "A",
        "An",
        "The",
        "This",
        "That",
        "These",
        "Those",
        "His",
        "Her",
        "Its",
        "Our",
        "Their",
        "My",
        "Your",
        "Every",
        "Each",
        "No",
        "Some",
        "Any",
        "What",
        "Which",
        "Whose",
        "Who",
        "All",
        "In",
        "At",
        "To",
        "From",
        "Of",
        "On",
        "By",
        "For",
        "With",
        "And",
        "But",
        "Or",
        "Nor",
        "Not",
        "So",
        "As",
        "If",
        "Oh",
        "Ah",
        "Yes",
        "Well",
        "Somebody",
    }
)


def read_list(name: str) -> list[str]:
    with open(os.path.join(GAZ, name), encoding="utf-8") as f:
        lines = (line.strip() for line in f)
        return [line for line in lines if line and not line.startswith("#")]


def norm(token: str) -> str:
    """The token without Austen's italics underscores ("_Emma_" -> "Emma")."""
    return token.strip("_") or token


def base(token: str) -> str:
    """Without a possessive: "Woodhouse's" -> "Woodhouse"."""
    for s in ("'s", "\u2019s"):
        if token.endswith(s) and len(token) > len(s):
            return token[: -len(s)]
    return token


def is_possessive(token: str) -> bool:
    return base(token) != token


def is_cap(token: str) -> bool:
    return token[:1].isupper() and token not in _STOP and not (len(token) > 1 and token.isupper())


def capital_positions(tokens: list[str]) -> set[int]:
    """Word positions where a capital may be due to position: the first word, and the
    first word after . ! ? : ; or a quotation mark ("Mr ." is not an end)."""
    pos, start = set(), True
    for i, t in enumerate(tokens):
        if t[:1].isalnum() or t[:1] == "_":
            if start:
                pos.add(i)
            start = False
        elif t in _QUOTES or (
            t in _ENDS and not (t == "." and i and tokens[i - 1] in _ABBREVIATIONS)
        ):
            start = True
    return pos


class Labeller:
    def __init__(self, sentences: list[list[str]]):
        self.titles = frozenset(read_list("titles.txt"))
        self.heads = frozenset(read_list("place_heads.txt"))
        self.gaz: dict[tuple[str, ...], str] = {}
        for typ in (*TYPES, "O"):
            for line in read_list(f"{typ}.txt"):
                key = tuple(tokenize(line))
                if self.gaz.get(key, typ) != typ:
                    raise SystemExit(f"{line!r} is in both {self.gaz[key]}.txt and {typ}.txt")
                self.gaz[key] = typ
        self.max_len = max(len(k) for k in self.gaz)
        self.vocabulary = {base(t) for key in self.gaz for t in key} | self.titles | self.heads
        # Corpus counts for the capital-position rule and the review check.
        self.mid: collections.Counter[str] = collections.Counter()
        self.lower: collections.Counter[str] = collections.Counter()
        for tokens in sentences:
            cap = capital_positions(tokens)
            for i, t in enumerate(tokens):
                b = base(norm(t))
                if b[:1].isupper() and i not in cap:
                    self.mid[b] += 1
                elif b[:1].islower():
                    self.lower[b] += 1

    def unreviewed(self) -> list[str]:
        known = set(self.titles) | set(self.heads) | set(read_list("reviewed_O.txt"))
        for key in self.gaz:
            known.update(base(t) for t in key)
        return sorted(
            w
            for w, c in self.mid.items()
            if c >= MIN_REVIEW_COUNT and w not in known and not w.isupper()
        )

    def gazetteer_match(self, toks: list[str], i: int, types=None) -> tuple[int, str | None]:
        """(end, type) of the longest gazetteer entry starting at i, or (i, None)."""
        for end in range(min(len(toks), i + self.max_len), i, -1):
            key = (*toks[i : end - 1], base(toks[end - 1]))
            typ = self.gaz.get(tuple(toks[i:end])) or self.gaz.get(key)
            if typ is not None and (types is None or typ in types):
                return end, typ
        return i, None

    def common_word(self, token: str) -> bool:
        """More often a lowercase word than a mid-sentence capitalised one in the corpus."""
        word = base(token)
        return self.lower[word.lower()] > self.mid[word]

    def place_run(self, toks: list[str], i: int, at_capital: bool) -> int:
        """End of the longest run of >= 2 capitalised tokens from i ending in a place head;
        the run starts neither with a head ("Parsonage House") nor, at a capital
        position, with a common word ("Quit Kellynch Hall")."""
        if not is_cap(toks[i]) or toks[i] in self.titles or base(toks[i]) in self.heads:
            return i
        if at_capital and self.common_word(toks[i]):
            return i
        best, j = i, i
        while j < len(toks):
            t = toks[j]
            if t == "." and j > i and toks[j - 1] == "St":
                j += 1
                continue
            if t == "-" and j > i and j + 1 < len(toks) and is_cap(toks[j + 1]):
                j += 1
                continue
            if not is_cap(t) or t in self.titles:
                break
            if j > i and base(t) in self.heads:
                best = j + 1
            if is_possessive(t) and j > i:
                break
            j += 1
        return best

    def name_after(self, toks: list[str], j: int) -> int:
        """End of the PER name starting at j (after a title), j if there is none."""
        end = j
        while end < len(toks):
            g_end, _ = self.gazetteer_match(toks, end, types=("PER",))
            if g_end > end:
                end = g_end
            elif is_cap(toks[end]) and toks[end] not in self.titles:
                end += 1
            else:
                break
            if is_possessive(toks[end - 1]):
                break
        return end

    def extend_per(self, toks: list[str], end: int) -> int:
        while end < len(toks) and not is_possessive(toks[end - 1]):
            g_end, _ = self.gazetteer_match(toks, end, types=("PER",))
            if g_end == end:
                break
            end = g_end
        return end

    def norm(self, token: str) -> str:
        """``norm``, and a capitals-only word of the gazetteers in their spelling
        ("GARDINER" -> "Gardiner", "ROBERT'S" -> "Robert's")."""
        token = norm(token)
        word = base(token)
        if len(word) > 1 and word.isupper() and word.capitalize() in self.vocabulary:
            return word.capitalize() + token[len(word) :].lower()
        return token

    def label(self, tokens: list[str]) -> list[str]:
        toks = [self.norm(t) for t in tokens]
        cap = capital_positions(tokens)
        tags = ["O"] * len(toks)
        i = 0
        while i < len(toks):
            g_end, typ = self.gazetteer_match(toks, i)
            if toks[i] in self.titles and g_end <= i + 1:
                j = i + 1
                while j < len(toks) and (toks[j] == "." or toks[j] in self.titles):
                    j += 1
                end = self.name_after(toks, j)
                if end > j:
                    tags[j:end] = ["B-PER"] + ["I-PER"] * (end - j - 1)
                    i = end
                else:
                    i += 1
                continue
            p_end = self.place_run(toks, i, i in cap)
            if p_end > g_end:
                g_end, typ = p_end, "LOC"
            if typ is not None and g_end == i + 1 and i in cap and self.common_word(toks[i]):
                typ = None
            if typ is None:
                i += 1
                continue
            if typ == "PER":
                g_end = self.extend_per(toks, g_end)
            if typ != "O":
                tags[i:g_end] = [f"B-{typ}"] + [f"I-{typ}"] * (g_end - i - 1)
            i = g_end
        return tags


def entities(tokens: list[str], tags: list[str]) -> list[tuple[str, str]]:
    """(type, text) of each IOB2 entity."""
    out, cur = [], None
    for t, tag in zip(tokens, tags, strict=True):
        if tag.startswith("B-"):
            cur = [tag[2:], [t]]
            out.append(cur)
        elif tag.startswith("I-") and cur is not None:
            cur[1].append(t)
        else:
            cur = None
    return [(typ, " ".join(words)) for typ, words in out]


def split_documents() -> dict[str, list[str]]:
    train = corpus_split_documents(CORPUS, "train", VALIDATION_FRACTION)
    held_out = corpus_split_documents(CORPUS, "validation", VALIDATION_FRACTION)
    return {
        "train": list(train[::TRAIN_EVERY]),
        "validation": list(held_out[0::2]),
        "test": list(held_out[1::2]),
        "_all": [*train, *held_out],
    }


def sentences_of(docs: list[str]) -> tuple[list[list[str]], int]:
    """Tokenised sentences of the documents, and how many were left out for length."""
    kept, long_ = [], 0
    for doc in docs:
        for line in doc.split("\n"):
            tokens = tokenize(line)
            if not tokens:
                continue
            if len(tokens) > MAX_TOKENS:
                long_ += 1
                continue
            kept.append(tokens)
    return kept, long_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sample", type=int, default=0, help="print this many seeded validation+test sentences"
    )
    args = parser.parse_args()
    docs = split_documents()
    all_sentences = [tokenize(line) for doc in docs.pop("_all") for line in doc.split("\n")]
    labeller = Labeller([s for s in all_sentences if s])
    missing = labeller.unreviewed()
    if missing:
        raise SystemExit(
            f"capitalised words not reviewed (add them to a gazetteer or reviewed_O.txt): {missing}"
        )
    data, stats = {}, {}
    for split, split_docs in docs.items():
        sentences, long_ = sentences_of(split_docs)
        rows = [(s, labeller.label(s)) for s in sentences]
        data[split] = rows
        counts = collections.Counter(typ for s, t in rows for typ, _ in entities(s, t))
        stats[split] = {
            "chapters": len(split_docs),
            "sentences": len(rows),
            "tokens": sum(len(s) for s, _ in rows),
            "entities": {typ: counts[typ] for typ in TYPES},
            "entity_tokens": sum(tag != "O" for _, t in rows for tag in t),
            "sentences_left_out_over_60_tokens": long_,
        }
        with open(os.path.join(HERE, f"{split}.txt"), "w", encoding="utf-8", newline="\n") as f:
            for s, t in rows:
                f.writelines(f"{w} {tag}\n" for w, tag in zip(s, t, strict=True))
                f.write("\n")
    train_mentions = {text for s, t in data["train"] for _, text in entities(s, t)}
    train_entity_words = {
        w for s, t in data["train"] for w, tag in zip(s, t, strict=True) if tag != "O"
    }
    train_words = {w for s, _ in data["train"] for w in s}
    for split in ("validation", "test"):
        mentions = [text for s, t in data[split] for _, text in entities(s, t)]
        ent_words = [w for s, t in data[split] for w, tag in zip(s, t, strict=True) if tag != "O"]
        words = [w for s, _ in data[split] for w in s]
        stats[split]["unseen_entity_mentions"] = round(
            sum(m not in train_mentions for m in mentions) / len(mentions), 4
        )
        stats[split]["unseen_entity_tokens"] = round(
            sum(w not in train_entity_words for w in ent_words) / len(ent_words), 4
        )
        stats[split]["oov_token_rate"] = round(
            sum(w not in train_words for w in words) / len(words), 4
        )
    stats["notes"] = {
        "unseen_entity_mentions": "fraction of entity mentions whose exact text (any type) "
        "is never an entity mention in train",
        "unseen_entity_tokens": "fraction of entity tokens never inside a train entity",
        "oov_token_rate": "fraction of running tokens whose word never occurs in train",
    }
    with open(os.path.join(HERE, "stats.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(stats, f, indent=2)
        f.write("\n")
    for split in ("train", "validation", "test"):
        st = stats[split]
        print(
            f"{split}: {st['sentences']} sentences, {st['tokens']} tokens, "
            f"entities {st['entities']}, left out {st['sentences_left_out_over_60_tokens']}"
        )
    if args.sample:
        pool = [(split, k) for split in ("validation", "test") for k in range(len(data[split]))]
        for n, (split, k) in enumerate(random.Random(0).sample(pool, args.sample)):
            s, t = data[split][k]
            print(f"{n:3d} {split}:{k} {bracket(s, t)}")


def bracket(tokens: list[str], tags: list[str]) -> str:
    """ "Mr . [PER Knightley] came" """
    out, open_ = [], False
    for w, tag in zip(tokens, tags, strict=True):
        if open_ and not tag.startswith("I-"):
            out[-1] += "]"
            open_ = False
        if tag.startswith("B-"):
            w, open_ = f"[{tag[2:]} {w}", True
        out.append(w)
    if open_:
        out[-1] += "]"
    return " ".join(out)


if __name__ == "__main__":
    main()
