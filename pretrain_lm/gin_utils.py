"""gin at the entry points, t5x style: ``--gin_file=...`` and ``--gin.KEY=VALUE`` flags.

* ``--gin.KEY=VALUE`` is rewritten to a binding ``KEY = VALUE``; a VALUE that is
  not a Python/gin literal is taken as a string, so ``--gin.MODEL_DIR=/tmp/run``
  needs no extra quotes.
* gin files are looked up relative to the working directory, the repository root
  and ``gin_configs/``; ``include`` lines inside gin files use the same paths.
* A wrong binding (unknown configurable or parameter, unbound REQUIRED value)
  stops with one message that says which binding and what the valid names are.
"""

from __future__ import annotations

import ast
import dataclasses
import logging as logging_std
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence

import gin

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SEARCH_PATHS = (os.path.join(REPO_ROOT, "gin_configs"), ".", REPO_ROOT)


class GinConfigError(ValueError):
    """A gin file or binding cannot be applied; the message names the fix."""


def rewrite_gin_args(argv: Sequence[str]) -> list[str]:
    """Turns ``--gin.KEY=VALUE`` into ``--gin_bindings=KEY = VALUE`` (absl-friendly)."""
    out = []
    for arg in argv:
        match = re.fullmatch(r"--gin\.([^=]+)=(.*)", arg, flags=re.DOTALL)
        if match:
            key, value = match.groups()
            out.append(f"--gin_bindings={key} = {_as_gin_value(value)}")
        else:
            out.append(arg)
    return out


def _as_gin_value(value: str) -> str:
    """Keeps gin references/literals as they are; quotes bare strings."""
    stripped = value.strip()
    if not stripped or stripped[0] in "@%([{'\"":
        return stripped or "''"
    try:
        ast.literal_eval(stripped)
        return stripped
    except (ValueError, SyntaxError):
        return repr(stripped)


def _guard_package_reader() -> None:
    """Keeps gin's package-resource reader from crashing on namespace packages.

    For ``include 'runs/pretrain.gin'`` gin also asks whether ``runs`` is an importable
    package; a plain ``runs/`` folder in the working directory (e.g. model dirs) is a
    namespace package without a file, and gin 0.5 then raises a TypeError instead of
    trying the next search path. Such a path simply does not exist for that reader.
    """
    from gin import config as gin_config
    from gin import resource_reader

    def exists(path: str) -> bool:
        try:
            return resource_reader.system_path_file_exists(path)
        except TypeError:
            return False

    gin_config._FILE_READERS[:] = [
        (reader, exists if check is resource_reader.system_path_file_exists else check)
        for reader, check in gin_config._FILE_READERS
    ]


def moved_gin_files(search_paths: Sequence[str]) -> dict[str, str]:
    """Older gin file -> its successor, from the table of ``gin_configs/README.md``."""
    for path in search_paths:
        readme = os.path.join(path, "README.md")
        if os.path.basename(os.path.normpath(path)) == "gin_configs" and os.path.exists(readme):
            with open(readme, encoding="utf-8") as f:
                text = f.read().partition("## Where the older files went")[2]
            return dict(re.findall(r"^\| `([^`]+\.gin)` \| `([^`]+\.gin)` \|$", text,
                                   re.MULTILINE))
    return {}


def parse(gin_files: Sequence[str], bindings: Sequence[str],
          search_paths: Sequence[str] = DEFAULT_SEARCH_PATHS) -> None:
    """Parses gin files and bindings, turning gin's errors into one clear message."""
    _guard_package_reader()
    for path in search_paths:
        gin.add_config_file_search_path(path)
    if not gin_files:
        raise GinConfigError("No --gin_file given; e.g. --gin_file=gin_configs/bert/"
                             "demo_tiny_austen.gin (see README).")
    for f in gin_files:
        if not any(os.path.exists(os.path.join(p, f)) for p in search_paths):
            moved = moved_gin_files(search_paths).get(f.removeprefix("gin_configs/"))
            raise GinConfigError(
                f"gin file {f!r} not found (searched {', '.join(search_paths)}). "
                + (f"It moved: use --gin_file={moved} (gin_configs/README.md)." if moved
                   else "List the available ones with `ls gin_configs/*/`."))
    try:
        gin.parse_config_files_and_bindings(gin_files, bindings, finalize_config=False)
    except (ValueError, ImportError, SyntaxError) as e:
        raise GinConfigError(_explain(e)) from e


def _explain(error: Exception) -> str:
    text = str(error)
    match = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'",
                      text)
    if match:
        selector, param = match.groups()
        valid = _parameters_of(selector)
        hint = f" Valid parameters: {', '.join(valid)}." if valid else ""
        return (f"Unknown gin binding: {selector} has no parameter {param!r}.{hint} "
                f"Fix the binding ({text.splitlines()[-1].strip()}).")
    match = re.search(r"No configurable matching '([^']+)'", text)
    if match:
        return (f"Unknown gin binding: nothing called {match.group(1)!r} is configurable. "
                "Check the spelling, and that the gin file imports its module "
                "(`from pretrain_lm import trainer`) under `from __gin__ import "
                f"dynamic_registration`. ({text.splitlines()[-1].strip()})")
    return f"Bad gin configuration: {text}"


def _parameters_of(selector: str) -> list[str]:
    import inspect

    try:
        configurable = gin.config._REGISTRY.get_match(selector)
        fn = configurable.wrapped if configurable is not None else None
        if fn is None:
            return []
        target = fn.__init__ if inspect.isclass(fn) else fn
        return [p for p in inspect.signature(target).parameters if p != "self"]
    except Exception:  # a hint only; never mask the real error
        return []


def macro(name: str, default: object = None) -> object:
    """Value of a gin macro (``%NAME``), or ``default`` when it is not bound."""
    try:
        return gin.query_parameter(f"%{name}")
    except ValueError:
        return default


def write_config(model_dir: str) -> str:
    """Writes the parsed gin config to ``model_dir/config.gin`` (what rebuilds the run:
    ``pretrain_lm.tools.ensemble``, ``pretrain_lm.tools.interop`` export); returns the path."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, "config.gin")
    with open(path, "w") as f:
        f.write(gin.config_str())
    return path


def without_gin_context(error: BaseException) -> str:
    """An exception's message without the ``In call to configurable ...`` line gin adds."""
    return re.sub(r"\n\s*In call to configurable .*$", "", str(error), flags=re.DOTALL)


def main_argv() -> list[str]:
    return rewrite_gin_args(sys.argv)


@dataclasses.dataclass(frozen=True)
class GinFlags:
    """The ``--gin_file`` / ``--gin_bindings`` (``--gin.X=V``) / ``--gin_search_paths``
    flags every gin entry point takes (``define_gin_flags``)."""

    files: object
    bindings: object
    search_paths: object


def define_gin_flags() -> GinFlags:
    """Defines the entry point's gin flags (once per program)."""
    from absl import flags

    return GinFlags(
        flags.DEFINE_multi_string("gin_file", [], "gin config files (in order)."),
        flags.DEFINE_multi_string(
            "gin_bindings", [], "Extra gin bindings; --gin.KEY=VALUE is rewritten to these."),
        flags.DEFINE_list("gin_search_paths", list(DEFAULT_SEARCH_PATHS),
                          "Where gin files and their includes are looked up."))


def start(argv: Sequence[str], gin_flags: GinFlags, *,
          before_parse: Callable[[], None] | None = None) -> None:
    """The preamble every gin entry point shares: no stray arguments, freed host memory
    given back (before JAX starts its threads), quiet library logs, ``before_parse``
    (e.g. multi-host initialisation), then the gin files and bindings parsed, or one
    clear error and exit."""
    from absl import app

    from pretrain_lm import host

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {list(argv[1:])}")
    host.keep_freed_memory()
    quiet_library_logs()
    if before_parse is not None:
        before_parse()
    try:
        parse(gin_flags.files.value, gin_flags.bindings.value,  # type: ignore[attr-defined]
              gin_flags.search_paths.value)  # type: ignore[attr-defined]
    except GinConfigError as e:
        sys.exit(f"error: {without_gin_context(e)}")


class _QuietLibraries(logging_std.Filter):
    """Drops library chatter: orbax's INFO lines (and its metadata warning on every
    resume) and gin's per-search-path misses."""

    def filter(self, record: logging_std.LogRecord) -> bool:
        if "/gin/resource_reader" in record.pathname:
            return False  # a missing file is reported by gin_utils.parse itself
        if record.levelno < logging_std.WARNING and "Unable to initialize backend" in (
                record.getMessage()):
            return False  # JAX probing for a TPU / GPU runtime this machine lacks
        if "/tensorflow/" in record.pathname and record.levelno < logging_std.WARNING:
            return False  # e.g. "Sharding callback duration" at every iterator save
        if "/orbax/" not in record.pathname:
            return True
        if record.exc_info and record.levelno >= logging_std.ERROR:
            # A failed save or read: the trainer reports it in one message; orbax's
            # traceback stays in the log at debug level (--verbosity=1).
            detail = "".join(traceback.format_exception(*record.exc_info))
            record.msg, record.args = f"{record.getMessage()} (traceback: --verbosity=1)", ()
            record.exc_info = record.exc_text = None
            logging_std.getLogger("absl").debug("orbax: %s", detail)
        # orbax warns on every resume that the composite metadata call cannot restore
        # items by itself; the restore that follows names its handlers.
        return (record.levelno >= logging_std.WARNING
                and "but could not be restored" not in record.getMessage())


def quiet_library_logs() -> None:
    """Quiet start for the command-line entry points: installs ``_QuietLibraries`` on
    absl's log handler and imports TensorFlow without its CUDA noise on a CPU machine
    (``host.import_tensorflow_quietly``)."""
    from absl import logging

    from pretrain_lm import host

    logging.get_absl_handler().addFilter(_QuietLibraries())
    host.import_tensorflow_quietly()
