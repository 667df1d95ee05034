#!/usr/bin/env python3
"""Build the en-de / en-fr software-message parallel corpus from gettext catalogs.

Standard library only, deterministic (same input files -> byte-identical output).

Input: a directory tree containing compiled gettext catalogs (``.mo``) and/or
source catalogs (``.po``).  The intended layout is one sub-directory per Debian
package, produced by ``dpkg-deb -x PKG_*.deb SRC/PKG`` (see README.md), e.g.::

    SRC/coreutils/usr/share/locale/de/LC_MESSAGES/coreutils.mo
    SRC/tar/usr/share/locale/fr/LC_MESSAGES/tar.mo

The language of a ``.mo`` file is taken from its ``locale/<lang>/LC_MESSAGES/`` path
(other categories such as coreutils' duplicate ``LC_TIME`` copy are ignored); the
language of a ``.po`` file is its file stem (``po/de.po``).  Only the exact codes
``de`` and ``fr`` are used (not ``de_CH``, ``fr_CA``, ...).  The first path component
below SRC is taken as the package name (used for the ``.packages`` provenance files and
the per-package statistics).

Usage::

    python data/parallel/build.py SRC [--out data/parallel] [--max-pairs 20000]

Writes ``OUT/en-de/{train,validation,test}.tsv`` (+ line-aligned ``.packages``
provenance files), the same under ``OUT/en-fr/``, and ``OUT/stats.json``.  The
filtering rules are documented in README.md and in ``filter_pair`` below.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import sys
from collections import Counter, defaultdict

LANGS = ("de", "fr")
SPLITS = ("train", "validation", "test")
MAX_WORDS = 40  # drop a pair if either side has more whitespace tokens than this
MIN_EN_WORDS = 2  # drop a pair if the English side has fewer tokens than this
MAX_CHAR_RATIO = 3.0  # drop a pair if len(long side) / len(short side) exceeds this ...
RATIO_MIN_CHARS = 20  # ... and the longer side has at least this many characters
DEFAULT_MAX_PAIRS = 20000  # per language pair, after filtering and deduplication


# --------------------------------------------------------------------------
# Catalog readers.  Both yield (msgctxt, msgid, msgid_plural, msgstrs, fuzzy).
# --------------------------------------------------------------------------


def _charset(header: str) -> str:
    m = re.search(r"charset=([A-Za-z0-9_.:-]+)", header)
    cs = m.group(1) if m else "utf-8"
    if cs.upper() in ("CHARSET", "ASCII", "ANSI_X3.4-1968"):
        cs = "utf-8"  # ASCII is a subset of UTF-8; 'CHARSET' is the template default
    return cs


_SEGMENTS_END = 0xFFFFFFFF


def read_mo(path: str):
    """Parse a GNU .mo file (revision 0 or 1, either byte order), including the
    "system-dependent" messages of revision 1 files (those using <inttypes.h> macros
    such as %<PRIu64>; they are rebuilt the way msgunfmt prints them).

    msgfmt never writes fuzzy or untranslated entries into a .mo (unless it is
    run with --use-fuzzy, which Debian builds do not), so ``fuzzy`` is always
    False here.
    """
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        end = "<"
    elif magic == 0xDE120495:
        end = ">"
    else:
        raise ValueError(f"{path}: not a .mo file")

    def u32(off: int, k: int = 1):
        return struct.unpack(f"{end}{k}I", data[off : off + 4 * k])

    rev, n, orig_off, trans_off = u32(4, 4)
    raw = []
    for i in range(n):
        olen, opos = u32(orig_off + 8 * i, 2)
        tlen, tpos = u32(trans_off + 8 * i, 2)
        raw.append((data[opos : opos + olen], data[tpos : tpos + tlen]))
    if (rev >> 16) == 0 and (rev & 0xFFFF) >= 1 and len(data) >= 48:
        n_seg, seg_off, n_sys, osys_off, tsys_off = u32(28, 5)
        segs = []
        for i in range(n_seg):
            slen, spos = u32(seg_off + 8 * i, 2)
            segs.append(data[spos : spos + slen].rstrip(b"\0"))

        def sysdep(tab_off: int, i: int) -> bytes:
            (pos,) = u32(tab_off + 4 * i)
            (off,) = u32(pos)
            out, pos = [], pos + 4
            while True:
                segsize, ref = u32(pos, 2)
                pos += 8
                out.append(data[off : off + segsize])
                off += segsize
                if ref == _SEGMENTS_END:
                    break
                out.append(b"<" + segs[ref] + b">")
            s = b"".join(out)
            return s[:-1] if s.endswith(b"\0") else s

        for i in range(n_sys):
            raw.append((sysdep(osys_off, i), sysdep(tsys_off, i)))
    charset = "utf-8"
    for orig, trans in raw:
        if orig == b"":
            charset = _charset(trans.decode("ascii", "replace"))
    for orig, trans in raw:
        if orig == b"":
            continue  # header entry
        o = orig.decode(charset, "replace")
        t = trans.decode(charset, "replace")
        ctxt = None
        if "\x04" in o:
            ctxt, o = o.split("\x04", 1)
        if "\x00" in o:
            msgid, plural = o.split("\x00", 1)
            yield ctxt, msgid, plural, t.split("\x00"), False
        else:
            yield ctxt, o, None, [t], False


_C_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "?": "?",
}
_C_ESCAPE_RE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]+)|(.))", re.S)


def _po_unquote(s: str) -> str:
    """Body of a PO string literal with C escapes decoded (\\n becomes a real newline)."""
    m = re.match(r'"(.*)"$', s)
    if not m:
        return ""

    def sub(e):
        if e.group(1):
            return chr(int(e.group(1), 8))
        if e.group(2):
            return chr(int(e.group(2), 16))
        return _C_ESCAPES.get(e.group(3), "\\" + e.group(3))

    return _C_ESCAPE_RE.sub(sub, m.group(1))


def read_po(path: str):
    """Minimal .po parser: handles msgctxt, msgid_plural, msgstr[N], multi-line
    strings, '#, fuzzy' flags and skips obsolete '#~' entries."""
    with open(path, "rb") as f:
        data = f.read()
    head = data[:4096].decode("ascii", "replace")
    text = data.decode(_charset(head), "replace")

    entries = []
    cur: dict = {}
    field = None

    def flush():
        nonlocal cur, field
        if "msgid" in cur:
            entries.append(cur)
        cur, field = {}, None

    for line in text.splitlines():
        line = line.strip()
        if not line:
            flush()
            continue
        if line.startswith("#~"):
            continue  # obsolete entry
        if line.startswith("#"):
            if "msgid" in cur and field is not None and field != "msgctxt":
                flush()
            if line.startswith("#,") and "fuzzy" in [x.strip() for x in line[2:].split(",")]:
                cur["fuzzy"] = True
            continue
        m = re.match(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(".*")$', line)
        if m:
            key = m.group(1)
            if key in ("msgctxt", "msgid") and "msgid" in cur and field not in (None, "msgctxt"):
                flush()  # new entry without a separating blank line
            field = key
            cur[field] = _po_unquote(m.group(3))
        elif line.startswith('"') and field is not None:
            cur[field] += _po_unquote(line)
    flush()

    for e in entries:
        if e["msgid"] == "":
            continue  # header entry
        if "msgid_plural" in e:
            keys = sorted((k for k in e if k.startswith("msgstr[")), key=lambda k: int(k[7:-1]))
            strs = [e[k] for k in keys]
            yield e.get("msgctxt"), e["msgid"], e["msgid_plural"], strs, bool(e.get("fuzzy"))
        else:
            yield e.get("msgctxt"), e["msgid"], None, [e.get("msgstr", "")], bool(e.get("fuzzy"))


# --------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------


def catalog_lang(rel: str) -> str | None:
    parts = rel.split(os.sep)
    if rel.endswith(".po"):
        stem = parts[-1][:-3]
        if stem in LANGS:
            return stem
    for i, p in enumerate(parts[:-1]):
        # locale/<lang>/LC_MESSAGES/<domain>.mo (coreutils also ships an identical copy
        # under LC_TIME, which is ignored)
        if p == "locale" and parts[i + 1 : i + 3] in ([lang, "LC_MESSAGES"] for lang in LANGS):
            return parts[i + 1]
    return None


def find_catalogs(src: str):
    """Yield (package, lang, relpath, abspath), sorted by relpath for determinism."""
    found = []
    for root, dirs, files in os.walk(src, followlinks=True):
        dirs.sort()
        for fn in sorted(files):
            if not (fn.endswith(".mo") or fn.endswith(".po")):
                continue
            ap = os.path.join(root, fn)
            rel = os.path.relpath(ap, src)
            lang = catalog_lang(rel)
            if lang is None:
                continue
            pkg = rel.split(os.sep)[0] if os.sep in rel else "."
            found.append((pkg, lang, rel, ap))
    found.sort(key=lambda x: x[2])
    return found


# --------------------------------------------------------------------------
# Normalisation and filtering
# --------------------------------------------------------------------------

# printf-style (%s, %-10.3lu, %1$s, %%, %<PRIu64>), Python %(name)s, {name}/{0}, ${var}
_DIRECTIVE = re.compile(
    r"%(?:\d+\$)?[-+ #0']*(?:\*|\d+)?(?:\.(?:\*|\d+))?"
    r"(?:hh|h|ll|l|L|q|j|z|Z|t|I)?[diouxXeEfFgGaAcCsSpnm%]"
    r"|%<[A-Za-z0-9_]+>"
    r"|%\([A-Za-z0-9_]+\)[-+ #0]*\d*(?:\.\d+)?[sdifrxXeEgGc]"
    r"|\{[A-Za-z0-9_.:!<>]*\}"
    r"|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?"
)
_LETTER = re.compile(r"[^\W\d_]")
# e2fsck problem messages use one-letter "@x" abbreviations ("@A @a" = "error allocating
# extended attribute") that are expanded at run time; translators expand them by hand in
# some languages and keep them in others, so such pairs are misaligned.
_AT_ABBREV = re.compile(r"(?<![\w@])@[A-Za-z](?![\w{])")


def normalise(s: str) -> str:
    """Newlines, tabs and other whitespace runs become one space; ends are stripped.

    Catalog strings are already unescaped here (.mo files hold the real characters and
    read_po decodes C escapes), so a literal backslash-n left in a message is text the
    program really prints (e.g. coreutils' "include \\n in FORMAT") and is kept."""
    return " ".join(s.split())  # str.split() splits on \n \t \r \v \f and Unicode spaces


def is_directive_token(tok: str) -> bool:
    """A token is a format directive if it contains one and has no letters besides it."""
    if not _DIRECTIVE.search(tok):
        return False
    return not _LETTER.search(_DIRECTIVE.sub("", tok))


def directive_fraction(s: str) -> float:
    toks = s.split()
    return sum(map(is_directive_token, toks)) / len(toks) if toks else 1.0


def filter_pair(en: str, xx: str) -> str | None:
    """Return the name of the rule that rejects the (normalised) pair, or None to keep it."""
    if not en or not xx:
        return "empty"
    ne, nx = len(en.split()), len(xx.split())
    if ne > MAX_WORDS or nx > MAX_WORDS:
        return "too_long"
    if ne < MIN_EN_WORDS:
        return "too_short"
    if _AT_ABBREV.search(en) or _AT_ABBREV.search(xx):
        return "at_abbreviation"
    if en.casefold() == xx.casefold():
        return "identical"
    if directive_fraction(en) > 0.5 or directive_fraction(xx) > 0.5:
        return "mostly_directives"
    if not _LETTER.search(en) or not _LETTER.search(xx):
        return "no_letters"
    lo, hi = sorted((len(en), len(xx)))
    if hi >= RATIO_MIN_CHARS and hi > MAX_CHAR_RATIO * lo:
        return "length_ratio"
    return None


def split_key(en: str) -> str:
    """Key that decides the split: case-folded English with punctuation removed, so
    'Invalid argument', 'invalid argument.' and 'invalid argument' share a split."""
    return " ".join(re.sub(r"[\W_]+", " ", en.casefold()).split())


def _h(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:8], "big")


def split_of(en: str) -> str:
    b = _h(split_key(en)) % 100
    return "train" if b < 90 else ("validation" if b < 95 else "test")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def build(src: str, out: str, max_pairs: int) -> dict:
    stats: dict = {"max_pairs": max_pairs, "langs": {}}
    catalogs = find_catalogs(src)
    if not catalogs:
        raise SystemExit(f"no de/fr .mo/.po catalogs found under {src}")
    for lang in LANGS:
        rejected = Counter()
        catalogs_used = []
        sources: dict = {}  # (en, xx) -> packages providing it, in catalog order
        pairs = []
        n_entries = 0
        for pkg, clang, rel, ap in catalogs:
            if clang != lang:
                continue
            catalogs_used.append(rel)
            reader = read_mo if ap.endswith(".mo") else read_po
            for _ctxt, msgid, plural, msgstrs, fuzzy in reader(ap):
                n_entries += 1
                if fuzzy:
                    rejected["fuzzy"] += 1
                    continue
                if plural is not None:
                    rejected["plural"] += 1  # plural entries are skipped entirely
                    continue
                if not msgstrs or not msgstrs[0]:
                    rejected["untranslated"] += 1
                    continue
                en, xx = normalise(msgid), normalise(msgstrs[0])
                why = filter_pair(en, xx)
                if why:
                    rejected[why] += 1
                    continue
                if (en, xx) in sources:
                    rejected["duplicate"] += 1
                    if pkg not in sources[(en, xx)]:
                        sources[(en, xx)].append(pkg)
                    continue
                sources[(en, xx)] = [pkg]
                pairs.append((en, xx))
        n_kept = len(pairs)
        if len(pairs) > max_pairs:
            # Deterministic cap: keep the pairs with the smallest hash of the pair.
            pairs.sort(key=lambda p: (_h("cap\t" + p[0] + "\t" + p[1]), p))
            pairs = pairs[:max_pairs]
        by_split = defaultdict(list)
        for en, xx in pairs:
            by_split[split_of(en)].append((en, xx))
        ldir = os.path.join(out, f"en-{lang}")
        os.makedirs(ldir, exist_ok=True)
        lstats = {
            "catalogs": catalogs_used,
            "entries_read": n_entries,
            "rejected": dict(sorted(rejected.items())),
            "pairs_after_filter_and_dedup": n_kept,
            "pairs_written": len(pairs),
            # a pair shared by several packages counts for each of them
            "pairs_by_package": dict(
                sorted(Counter(p for pr in pairs for p in sources[pr]).items())
            ),
            "splits": {},
        }
        for split in SPLITS:
            rows = sorted(by_split[split], key=lambda p: (_h("order\t" + p[0] + "\t" + p[1]), p))
            with open(os.path.join(ldir, f"{split}.tsv"), "w", encoding="utf-8", newline="\n") as f:
                f.write(f"en\t{lang}\n")
                for en, xx in rows:
                    f.write(f"{en}\t{xx}\n")  # normalise() already turned tabs into spaces
            # Provenance, line-aligned with the .tsv (same header line count): the Debian
            # package(s) whose catalog contains the pair, comma-separated.
            ppath = os.path.join(ldir, f"{split}.packages")
            with open(ppath, "w", encoding="utf-8", newline="\n") as f:
                f.write("packages\n")
                for pr in rows:
                    f.write(",".join(sources[pr]) + "\n")
            n = len(rows)
            lstats["splits"][split] = {
                "pairs": n,
                "distinct_en": len({en for en, _ in rows}),
                "avg_words_en": round(sum(len(e.split()) for e, _ in rows) / max(n, 1), 2),
                f"avg_words_{lang}": round(sum(len(x.split()) for _, x in rows) / max(n, 1), 2),
                "avg_chars_en": round(sum(len(e) for e, _ in rows) / max(n, 1), 1),
                f"avg_chars_{lang}": round(sum(len(x) for _, x in rows) / max(n, 1), 1),
            }
        stats["langs"][f"en-{lang}"] = lstats
    with open(os.path.join(out, "stats.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(stats, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="directory tree with extracted packages / .mo / .po files")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=here, help="output directory (default: next to this file)")
    ap.add_argument("--max-pairs", type=int, default=DEFAULT_MAX_PAIRS, help="cap per lang pair")
    args = ap.parse_args(argv)
    stats = build(args.src, args.out, args.max_pairs)
    for lp, s in stats["langs"].items():
        sp = s["splits"]
        print(
            f"{lp}: {s['pairs_after_filter_and_dedup']} pairs kept, {s['pairs_written']} written "
            f"(train {sp['train']['pairs']}, validation {sp['validation']['pairs']}, "
            f"test {sp['test']['pairs']}); "
            f"rejected {s['rejected']}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
