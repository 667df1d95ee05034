"""Builds gcide.txt, a general-domain English corpus, from Debian's ``dict-gcide``.

GCIDE (the GNU Collaborative International Dictionary of English) is Webster's Revised
Unabridged Dictionary (1913) plus some WordNet 1.5 glosses and volunteer additions. This
script extracts the running English text of its definitions: sense definitions, notes, usage
paragraphs, phrase definitions and illustrative quotations. Headword lines (pronunciation,
part of speech, etymology), synonym lists, source tags such as ``[1913 Webster]``, usage labels
such as ``[Obs.]``, subject labels such as ``(Zool.)``, sense numbers, quotation attributions
(``--Shak.``) and cross-reference braces are removed.

Output: the input format of google-research/bert's ``create_pretraining_data.py`` -- one
sentence per line, a blank line between documents, UTF-8. A document is ``ENTRIES_PER_DOC``
consecutive dictionary entries (a dictd article: all homographs of one headword) that begin
with the same letter; of each letter's documents every ``KEEP_EVERY``-th is kept, starting with
the first, so that every letter is represented and the output is about 4 MB.

    python data/corpus/gcide/build.py OUT.txt /usr/share/dictd/gcide.dict.dz \
        /usr/share/dictd/gcide.index
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import unicodedata
from collections.abc import Iterator

ENTRIES_PER_DOC = 50
KEEP_EVERY = 5
MIN_WORDS = 5
MIN_LETTER_FRACTION = 0.8

BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Marks a sentence that contained pronunciation notation; such sentences are dropped.
BAD = "\x00"

# --- GCIDE character codes (``[ae]``, ``['e]``, ...) --------------------------------------------
ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303",
           "=": "\u0304", "-": "\u0304", ",": "\u0327"}
GREEK = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
         "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon",
         "phi", "chi", "psi", "omega"]
SYMBOLS = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "=ae": "ǣ", "imac": "ī", "aum": "ä",
           "eth": "ð", "thorn": "þ", "yogh": "ȝ", "ng": "ŋ", "deg": "°", "sect": "§",
           "pounds": "£", "para": "¶", "middot": "·", "times": "\u00d7", "divby": "÷", "div": "÷",
           "dagger": "†", "dag": "†", "nbsp": " ", "ldqo": "\u201c", "rdqo": "\u201d",
           "rsquo": "\u2019", "cacute": "ć", "ccaron": "č", "frac12": "½", "frac14": "¼",
           "frac34": "¾", "filig": "fi", "fllig": "fl", "ffllig": "ffl", "sharp": "♯",
           "flat": "♭", "min": "\u2032", "sec": "\u2033", "schwa": "ə"}
SYMBOLS.update({name: chr(0x3B1 + i + (i > 16)) for i, name in enumerate(GREEK)})  # no final s
SYMBOLS.update({name.capitalize(): chr(0x391 + i + (i > 16)) for i, name in enumerate(GREEK)})
# Pronunciation-only notation: a dot or asterisk over a vowel, e-tilde, "a semi-long", ...
PRONUNCIATION_CODE = re.compile(r"\[(?:[.*][A-Za-z]{1,2}|~e|[a-z]{1,2}\^|[=\-]oo|asl|add|udd|"
                                r"root|dsdot|lsdot|zdot|mdot|bprime|break|bar|asper|hand|wn1|"
                                r"sb|ncir|spasp|cuberoot|upslur|downslur|colret)\]")
ACCENT_CODE = re.compile(r"\[([" + re.escape("".join(ACCENTS)) + r"])([A-Za-z])\]")
BREVE_CODE = re.compile(r"\[([A-Za-z])\^\]")
SYMBOL_CODE = re.compile(r"\[(=?[A-Za-z]+[0-9]*)\]")

# --- Labels, tags and other noise -----------------------------------------------------------------
LABEL_WORDS = {"slang", "archaic", "informal", "vulgar", "obsolete", "acronym", "cant",
               "jocose", "colloq", "poetic", "recent", "rare", "low", "local", "modern",
               "india", "canada", "alaska", "texas", "irish", "scotch", "turkey", "russia",
               "egypt", "france", "japan", "china", "austria", "amer", "brit", "plural",
               "generic", "nformal", "sic", "dele", "prenominal", "postnominal", "predicate",
               "attributive", "british", "trademark", "chiefly", "mostly", "usually", "often"}
KEEP_CAPITALIZED = {"He", "She", "It", "They", "We", "I", "Thou", "The", "A", "To", "Men",
                    "God", "Christ", "Jesus"}
BRACKET = re.compile(r"\[([^\[\]]*)\]")
BRACE = re.compile(r"\{([^{}]*)\}")
# A parenthesis holding pronunciation notation (``(b[oo^]k)``, ``(-d[u^]nd)``).
PRONUNCIATION_PAREN = re.compile(r"\s*\([^()]*(?:\[[^\]]*\]|\*|`|\w\"\w)[^()]*\)")
# Subject labels: ``(Zool.)``, ``(Physiol. Chem.)`` anywhere; ``(Law)`` at a definition's start.
ABBREVIATED_LABEL = re.compile(r"\s*\((?:[A-Z][a-z]*\.\s?(?:&\s)?)+\)")
LEADING_LABEL = re.compile(r"^\((?:[A-Z][A-Za-z]*\.?\s?(?:&\s)?){1,3}\)[.,]?\s*")
SENSE_NUMBER = re.compile(r"^(?:\d+\.\s*)?(?:\d+\s+(?=[A-Za-z(]))?(?:\([a-z]\)\s*)?")
SUBSENSE = re.compile(r"(?:(?<=\s)|^)\((?:[a-z]|\d{1,2})\)\s+")
ATTRIBUTION = re.compile(r"\s*--(?:\s?\d\.?\s|\s(?=[A-Z][a-z]{0,5}\.\s))?[A-Z][^\"]*?(?=\s+\"|$)"
                         r"|\s--\s(?:(?:[A-Z][\w'.]*|of|the|and|[ivxl]+\.|\d+\.?)\s?){1,6}$")
DROP_LABELS = re.compile(r"^(?:Syn|Ant|Antonym|See also|Also See|See|Fig\.|Lit\.|Ver\.)\s*:")
STRIP_LABELS = re.compile(r"^(?:Note|Usage)\s*:\s*")
CROSS_REFERENCE = re.compile(r"^(?:See|Cf\.|Compare|Same as)\b")
# Grammatical cross-references ("p. pr. of coax", "3d sing. pres. of Abide", "imp. & p. p. of")
# and leftovers of head lines or sense numbers ("v. t.", "pl. Fowls", "... 1. Any bird").
GRAMMAR = re.compile(r"^(?:\d\w*\s)?(?:[a-z]{1,6}|AS|OE|OF|OHG|ME|L|LL|NL|Gr|F|G|Icel)\.\s"
                     r"|\b(?:imp\.|p\. ?p\.|p\. ?pr\.|vb\. n\.|v\. [ti]\.|pl\. [A-Z])"
                     r"|[.,] n\. |(?<=[.;] )\d{1,2}\. (?=[A-Z(])")  # head or sense-number remnants
HEAD_TOKEN = re.compile(r"\s+|[,;.&]|or\b|[a-z]{1,7}\.|(?:L|E|F|Gr|NL|LL|It|Sp|Heb)\.(?=\s)")
# Source tags end a paragraph; where text follows one, it is a separate (often broken) piece.
SOURCE_TAG = re.compile(r"\[[^\[\]]*(?:Webster|WordNet|PJC|RDH|RHUD|MW10|MI11|Century|"
                        r"\bGG\b|\bRP\b)[^\[\]]*\]")
# Run-on derivatives: "Tending to stop hemorrhage. -- n. A remedy for hemorrhage."
RUN_ON = re.compile(r"\s--\s+(?=\{|(?:[a-z]{1,6}\.[,\s&]*)+(?:\([^()]*\)\s*)?[A-Z{])"
                    r"(?:[a-z]{1,6}\.[,\s&]*)*")
TERMINAL = re.compile(r"[.!?][\"'\u201d\u2019)]*$")

# --- Sentence splitting ---------------------------------------------------------------------------
ABBREVIATIONS = {"Mr", "Mrs", "Dr", "St", "Mt", "Ft", "Capt", "Col", "Gen", "Rev", "Esq", "Jr",
                 "Sr", "Prof", "Hon", "No", "Co", "vs", "viz", "cf", "Cf", "fig", "Fig", "pl",
                 "sq", "ft", "lb", "oz", "vol", "ch", "chap", "ed", "Lat", "Gr", "Fr", "Ger",
                 "It", "Sp", "Eng", "Brit", "Amer", "Obs", "Zool", "Bot", "Chem", "Med", "Anat",
                 "Naut", "Min", "Biol", "Mus", "Arch", "Mil", "Math", "Astron", "Geol", "Gram",
                 "Eccl", "Lit", "Heb", "Skr", "Ar", "Pers", "Prov", "Mass", "Va", "Penn", "Ky",
                 "Ala", "Geo", "Wm", "Chas", "Thos", "Jas", "Jno", "Bp", "Abp", "Gov", "Lieut",
                 "Sec", "Ps", "Matt", "Ex", "Deut", "Isa", "Jer", "Rom", "Cor"}
SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(]?[A-Z])")
# Markup left over, URLs, and "?" standing for an untranscribed Greek or Hebrew word.
FORBIDDEN = re.compile(r"[\\{}\[\]|*<>_`~=^@#$%\x00\ufffd]|https?:|www\.|(?:^|[\s(,;.])\?")


def decode_base64_number(text: str) -> int:
    """Decodes dictd's base-64 encoded offsets and lengths."""
    value = 0
    for char in text:
        value = value * 64 + BASE64.index(char)
    return value


def read_articles(dict_dz: str, index: str) -> list[str]:
    """The dictionary's articles (one per distinct index target) in file order."""
    with gzip.open(dict_dz, "rb") as f:  # dictzip is gzip with random-access extras
        data = f.read()
    spans = set()
    with open(index, encoding="utf-8") as f:
        for line in f:
            _, offset, length = line.rstrip("\n").split("\t")
            spans.add((decode_base64_number(offset), decode_base64_number(length)))
    articles = []
    for offset, length in sorted(spans):
        raw = data[offset:offset + length]
        try:
            articles.append(raw.decode("utf-8"))
        except UnicodeDecodeError:  # three stray Windows-1252 bytes in 0.48.5
            articles.append(raw.decode("cp1252", errors="replace"))
    return articles


def initial(article: str) -> str | None:
    """Lower-case first letter of an article's headword; None for numbers and metadata."""
    head = replace_character_codes(article[:20])
    letter = unicodedata.normalize("NFKD", head[:1])[:1].lower()
    letter = {"æ": "a", "œ": "o"}.get(letter, letter)
    return letter if "a" <= letter <= "z" and not article.startswith("00-") else None


def replace_character_codes(text: str) -> str:
    """Turns GCIDE's bracketed character codes into Unicode; pronunciation codes into BAD."""
    text = PRONUNCIATION_CODE.sub(BAD, text)
    text = ACCENT_CODE.sub(lambda m: unicodedata.normalize("NFC", m[2] + ACCENTS[m[1]]), text)
    text = BREVE_CODE.sub(lambda m: unicodedata.normalize("NFC", m[1] + "\u0306"), text)
    return SYMBOL_CODE.sub(lambda m: SYMBOLS.get(m[1], m[0]), text)


def remove_tags(text: str) -> str:
    """Drops bracketed tags (``[1913 Webster]``, ``[Obs.]``, ``[Slang]``); keeps editorial
    insertions in quotations (``[they]``) as plain words."""

    def replace(match: re.Match[str]) -> str:
        content = match[1].strip()
        if not re.fullmatch(r"[A-Za-z][A-Za-z' ]*", content):
            return " "
        if content.lower() in LABEL_WORDS:
            return " "
        if content[0].isupper() and content.split()[0] not in KEEP_CAPITALIZED:
            return " "
        before, after = text[:match.start()], text[match.end():]
        if not (re.search(r"\w[,;]?\s*$", before) and re.match(r"\s*[,;]?\s*\w", after)):
            return " "  # a label such as ``[prenominal]`` at a definition's start or end
        return content

    # ``replace`` looks at ``text`` around each match: the string that ``sub`` is working on.
    previous = None
    while previous != text:  # innermost brackets first
        previous = text
        text = BRACKET.sub(replace, text)
    return text


def strip_head(text: str) -> str:
    """Removes an entry's head: headwords with ``\\pronunciation\\``, part of speech,
    inflections and etymology; returns the definition text that may follow on."""
    last_slash = text.rfind("\\")
    position = last_slash + 1 if last_slash >= 0 else 0
    while position < len(text):
        char = text[position]
        if char in "([{":  # skip a balanced group
            closing, depth, end = {"(": ")", "[": "]", "{": "}"}[char], 0, position
            while end < len(text):
                depth += text[end] == char
                depth -= text[end] == closing
                end += 1
                if depth == 0:
                    break
            position = end
            continue
        match = HEAD_TOKEN.match(text, position)
        if not match:
            break
        position = match.end()
    rest = text[position:]
    first_sense = re.search(r"(?:^|\s)1\.\s+(?=[A-Z(])", rest)  # head text the loop missed
    return rest[first_sense.end():] if first_sense else rest


def clean(text: str) -> str:
    """Markup-free running text of one paragraph's (head-less) content."""
    text = PRONUNCIATION_PAREN.sub("", text)
    text = replace_character_codes(text)
    text = remove_tags(text)
    text = re.sub(r"^\s*(\{[^{}]*\})\s*\([^()]*\)", r"\1", text)  # "{Phrase} (Zool.), ..."
    text = BRACE.sub(r"\1", text)
    text = ABBREVIATED_LABEL.sub("", text)
    text = ATTRIBUTION.sub("", text)
    text = " ".join(text.split())
    text = SENSE_NUMBER.sub("", text)
    text = LEADING_LABEL.sub("", text)
    text = re.sub(r"^\(\d{4}\)\s*", "", text)  # a WordNet date of first use
    text = SUBSENSE.sub("", text)
    text = re.sub(r"\.\s\.\s\.(?:\s\.)?", "...", text)  # ". . ." ellipses
    text = re.sub(r"\s*([;,:])\s*--\s*", r"\1 ", text)  # "; -- used in ..."
    text = re.sub(r"([.!?])\s+--\s+(?=[A-Z])", r"\1 ", text)  # "... staff. -- A sharp is ..."
    text = re.sub(r"\s+--\s+", " -- ", text)
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\s+([,;:.!?)])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"\(\s+", "(", text)
    return " ".join(text.split()).strip(" ,;:")


def paragraphs(article: str) -> Iterator[str]:
    """Cleaned text of the prose paragraphs of one article (all its homograph entries)."""
    for block in re.split(r"\n[ \t]*\n", article.replace("\r", "")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        indent = len(lines[0]) - len(lines[0].lstrip())
        text = " ".join(line.strip() for line in lines)
        if indent == 0:
            text = strip_head(text)
        elif indent < 9:  # senses, notes, phrases; 12 and more: a quotation
            if DROP_LABELS.match(text):
                continue
            text = STRIP_LABELS.sub("", text)
            text = re.sub(r"^(Specifically|Hence)\s*:\s*", r"\1, ", text)
        for piece in SOURCE_TAG.split(text):
            for part in RUN_ON.split(piece):
                part = clean(part)
                if part:
                    yield part


def split_sentences(paragraph: str) -> list[str]:
    """Rule-based split at . ! ? followed by a capital, except after abbreviations/initials."""
    pieces, start = [], 0
    for match in SENTENCE_END.finditer(paragraph):
        before = paragraph[start:match.start()]
        last_word = re.search(r"(\S+)\.$", before)
        if last_word:
            word = last_word[1].lstrip("(\"'")
            if word in ABBREVIATIONS or len(word) == 1 or "." in word:
                continue
        if before.endswith("..."):
            continue
        pieces.append(paragraph[start:match.start() + len(match[0].rstrip())].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [p for p in pieces if p]


def finish(sentence: str) -> str:
    """Tidies a sentence's ends; a sentence without final punctuation is cut back to its last
    full stop (what follows is usually a broken WordNet example or label) or dropped."""
    sentence = re.sub(r"(?<=\w\.)\.(?!\.)", "", sentence.lstrip(",;:. "))  # "a.m.." -> "a.m."
    if TERMINAL.search(sentence):
        return sentence
    ends = [m.end() for m in re.finditer(r"[.!?][\"'\u201d\u2019)]*(?=\s)", sentence)]
    return sentence[:ends[-1]] if ends else ""


def is_clean(sentence: str) -> bool:
    """At least MIN_WORDS words, mostly letters, no markup left, not a cross-reference."""
    if FORBIDDEN.search(sentence) or CROSS_REFERENCE.match(sentence) or GRAMMAR.search(sentence):
        return False
    if sum(any(c.isalpha() for c in word) for word in sentence.split()) < MIN_WORDS:
        return False
    if sentence.count("(") != sentence.count(")") or sentence.count('"') % 2:
        return False
    visible = [c for c in sentence if not c.isspace()]
    return sum(c.isalpha() for c in visible) >= MIN_LETTER_FRACTION * len(visible)


def document(articles: list[str]) -> list[str]:
    """The clean sentences of consecutive articles, without repeats."""
    sentences, seen = [], set()
    for article in articles:
        for paragraph in paragraphs(article):
            for sentence in split_sentences(paragraph):
                sentence = finish(sentence)
                if is_clean(sentence) and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
    return sentences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output file (BERT pre-training format)")
    parser.add_argument("dict_dz", help="gcide.dict.dz (dictzip) of Debian's dict-gcide")
    parser.add_argument("index", help="gcide.index of Debian's dict-gcide")
    parser.add_argument("--entries_per_doc", type=int, default=ENTRIES_PER_DOC)
    parser.add_argument("--keep_every", type=int, default=KEEP_EVERY)
    args = parser.parse_args()

    by_letter: dict[str, list[str]] = {}
    for article in read_articles(args.dict_dz, args.index):
        letter = initial(article)
        if letter:
            by_letter.setdefault(letter, []).append(article)
    documents = sentences = words = 0
    with open(args.out, "w", encoding="utf-8") as out:
        for letter in sorted(by_letter):
            articles = by_letter[letter]
            size = args.entries_per_doc
            for number, start in enumerate(range(0, len(articles), size)):
                if number % args.keep_every:
                    continue
                lines = document(articles[start:start + size])
                if not lines:
                    continue
                if documents:
                    out.write("\n")
                out.write("".join(line + "\n" for line in lines))
                documents += 1
                sentences += len(lines)
                words += sum(len(line.split()) for line in lines)
    print(f"{args.out}: {documents} documents, {sentences} sentences, {words} words",
          file=sys.stderr)


if __name__ == "__main__":
    main()
