"""``voicekit synth``: text, Markdown, EPUB or stdin in; an audiobook out."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from voicekit.cli import options as o
from voicekit.cli.common import err_console, handles_errors, out_console, print_error
from voicekit.cli.render import hms, make_view
from voicekit.cli.tasks import BookTask, batch_table, task_row
from voicekit.cluster.connect import cluster_address, import_ray
from voicekit.errors import InputError, OutputError, VoicekitError
from voicekit.formats.chapter_files import PLAYLIST_SUFFIX
from voicekit.formats.output import ALIASES, EXTENSIONS, format_for
from voicekit.formats.tags import load_cover
from voicekit.profiles import resolve_settings
from voicekit.settings import SynthSettings
from voicekit.synth.captions import parse_formats
from voicekit.synth.credits import add_credits
from voicekit.synth.job import has_finished_work
from voicekit.synth.pipeline import RunOptions, Synthesizer, default_job_dir
from voicekit.synth.plan import Plan, select_chapters
from voicekit.synth.progress import RunResult
from voicekit.text import epub_limits
from voicekit.text.model import Book
from voicekit.text.sources import EPUB_SUFFIXES, load_source

app = typer.Typer()

# every suffix format_for reads as audio, so a batch -o that names a file is refused
_AUDIO_SUFFIXES = {*EXTENSIONS.values(), *ALIASES}


@dataclass(frozen=True)
class ViewMode:
    """How a run shows itself: the live panel or plain lines, or only errors, or JSON."""

    quiet: bool = False
    json: bool = False


def _meta_option(flag: str, help: str) -> Any:
    return typer.Option(flag, help=f"{help} Replaces the book's own.", show_default=False,
                        rich_help_panel="Metadata")  # fmt: skip


@app.command("synth", cls=o.Command)
@handles_errors
@o.with_settings_flags
def synth(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE...",
            help="Text (.txt), Markdown (.md) or EPUB files; - reads standard input.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE|FOLDER",
            help="Output file; with several inputs, a folder. "
            "Default: beside the input, named after it.",
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            metavar="NAME",
            help="Settings preset (voicekit profiles list).",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the plan (chapters, words, estimates) and stop."),
    ] = False,
    chapters: Annotated[
        str | None,
        typer.Option(
            "--chapters",
            metavar="LIST",
            help="Chapters to read, by plan index: 1-3,7.",
            show_default=False,
        ),
    ] = None,
    all_chapters: Annotated[
        bool,
        typer.Option("--all-chapters", help="Also read front and back matter skipped by default."),
    ] = False,
    work_dir: Annotated[
        Path | None,
        typer.Option(
            "--work-dir",
            metavar="FOLDER",
            help="Job folder (default: <output>.voicekit-job beside the output).",
            show_default=False,
        ),
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Discard a previous job's finished buckets.")
    ] = False,
    keep_work: Annotated[
        bool, typer.Option("--keep-work", help="Keep the job folder after success.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing outputs.")] = False,
    captions: Annotated[
        str | None,
        typer.Option(
            "--captions",
            help="Write captions beside the audiobook: srt, vtt or srt,vtt (<output>.srt/.vtt; "
            "one per chapter file with --split-chapters). A cue per sentence, the book's text, "
            "at most 2 lines of 42 characters. Default: none.",
            metavar="FORMATS",
            show_default=False,
        ),
    ] = None,
    readalong: Annotated[
        Path | None,
        typer.Option(
            "--readalong",
            help="Also write a read-along EPUB 3 (Media Overlays: the text highlighted as the "
            "audio plays) to this path. Default: none.",
            metavar="EPUB",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="Print a JSON summary (or the plan, with --dry-run) on stdout."
        ),
    ] = False,
    text: Annotated[
        bool,
        typer.Option(
            "--text",
            help="With --dry-run: print the reading script, exactly what the voice is given "
            "(with --json: add each chapter's sentences to the plan).",
        ),
    ] = False,
    epub_limit: Annotated[
        list[str] | None,
        typer.Option(
            "--epub-limit",
            help="Raise a safety limit on EPUBs, NAME=N; repeatable. Defaults: file-mb=64 "
            "(one file unpacked), book-mb=512 (all files), text-mb=64 (the text), "
            "ratio=100 (packing of files over 1 MB), chapters=3000 (documents, TOC entries).",
            metavar="NAME=N",
            show_default=False,
        ),
    ] = None,
    # --- metadata: replaces the book's own (prod-b) ---------------------------------
    title: Annotated[str | None, _meta_option("--title", "Book title.")] = None,
    author: Annotated[
        list[str] | None, _meta_option("--author", "Author; repeat for several.")
    ] = None,
    narrator: Annotated[
        list[str] | None,
        _meta_option("--narrator", "Narrator (tagged as composer); repeat for several."),
    ] = None,
    cover: Annotated[
        Path | None, _meta_option("--cover", "Cover image (JPEG or PNG; others are converted).")
    ] = None,
    language: Annotated[
        str | None, _meta_option("--language", "Language tag such as en or en-GB.")
    ] = None,
    series: Annotated[str | None, _meta_option("--series", "Series name.")] = None,
    series_index: Annotated[
        str | None, _meta_option("--series-index", "Place in the series: 2, or 2.5.")
    ] = None,
    year: Annotated[int | None, _meta_option("--year", "Publication year, such as 2024.")] = None,
    **flags: Any,
) -> None:
    """Read text, Markdown or EPUB aloud into an audiobook (resumable; rerun to continue)."""
    resolved = resolve_settings(o.settings_flags(flags), profile)
    settings = resolved.settings
    cluster = cluster_address(flags.get("cluster"), settings.cluster) if not dry_run else None
    if cluster:  # without the extra, say so before reading any book
        import_ray()
    limits = epub_limits.parse_limits(epub_limit)
    overrides = _meta_overrides(title, author, narrator, cover, language, series, series_index,
                                year)  # fmt: skip
    if text and not dry_run:
        raise InputError("--text shows the reading script of a plan: use it with --dry-run")
    caption_kinds = parse_formats(captions)
    if readalong is not None and len(inputs) > 1:
        raise InputError("--readalong names one EPUB: use it with one input")
    tasks = _plan_outputs(inputs, output, settings, split=settings.split_chapters)
    for task in tasks:  # check every input before any work starts
        try:
            task.book = load_source(task.source, limits=limits)
            _apply_meta(task.book, overrides)
            select_chapters(task.book, chapters, all_chapters)
            if settings.credits:
                add_credits(task.book)
        except VoicekitError as exc:
            task.error = exc
    if len(tasks) == 1 and tasks[0].error:
        raise tasks[0].error
    if not quiet and not (dry_run and json_out):
        for task in tasks:
            for warning in task.book.meta.warnings if task.book else []:
                err_console().print(f"warning: {task.source}: {warning}", markup=False)
    synthesizer = Synthesizer(settings, choice=resolved.choice)
    try:
        if dry_run:
            _dry_run(synthesizer, tasks, json_out, text=text)
            return
        run = RunOptions(
            job_dir=work_dir, restart=restart, keep_work=keep_work, force=force,
            captions=caption_kinds, readalong=readalong,
        )  # fmt: skip
        view = ViewMode(quiet=quiet, json=json_out)
        if cluster:  # every book, one or many, goes to the cluster's workers
            from voicekit.cli.cluster import run_on_cluster

            job = work_dir if len(tasks) == 1 else None
            run_on_cluster(cluster, settings, tasks, replace(run, job_dir=job), view)
        elif len(tasks) == 1:
            _summary(_run_one(synthesizer, tasks[0], run, view), view)
        else:  # each book of a batch has its own job folder beside its output
            _run_batch(synthesizer, tasks, replace(run, job_dir=None), view)
    finally:
        synthesizer.close()


_SERIES_INDEX = re.compile(r"^\d{1,6}(?:\.\d{1,3})?$")


def _meta_overrides(
    title: str | None,
    authors: list[str] | None,
    narrators: list[str] | None,
    cover: Path | None,
    language: str | None,
    series: str | None,
    series_index: str | None,
    year: int | None,
) -> dict[str, Any]:
    """The metadata flags given, checked (a bad cover fails before any work)."""
    if series_index is not None and not _SERIES_INDEX.match(series_index.strip()):
        raise InputError(f"--series-index '{series_index}' is not a number like 2 or 2.5")
    if year is not None and not 1000 <= year <= 9999:
        raise InputError(f"--year {year} is not a four-digit year")
    found: dict[str, Any] = {
        "title": title,
        "authors": [a for a in authors or [] if a.strip()] or None,
        "narrators": [n for n in narrators or [] if n.strip()] or None,
        "language": language,
        "series": series,
        "series_index": series_index.strip() if series_index else None,
        "date": str(year) if year is not None else None,
    }
    if cover is not None:
        loaded = load_cover(cover)
        found["cover"], found["cover_mime"] = loaded.data, loaded.mime
    return {k: v for k, v in found.items() if v is not None}


def _apply_meta(book: Book, overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        setattr(book.meta, key, value)


def _plan_outputs(
    inputs: list[str], output: Path | None, settings: SynthSettings, *, split: bool = False
) -> list[BookTask]:
    """Where each input's audiobook goes, and in which format; every refusal before any work."""
    if not inputs:
        raise InputError("give at least one input file (or - for standard input)")
    batch = len(inputs) > 1
    if batch:
        if "-" in inputs:
            raise InputError("standard input (-) cannot be part of a batch")
        if output is not None and output.exists() and not output.is_dir():
            raise InputError(f"with several inputs, -o must be a folder; {output} is a file")
        if output is not None and not output.exists() and output.suffix.lower() in _AUDIO_SUFFIXES:
            raise InputError(f"with several inputs, -o must be a folder; {output} names a file")
    elif inputs[0] == "-" and output is None:
        raise InputError("reading standard input needs -o/--output")
    stems = [Path(i).stem if i != "-" else "stdin" for i in inputs]
    if len(set(stems)) != len(stems):
        raise InputError("two inputs share a name; their outputs would collide")
    tasks = []
    for source, stem in zip(inputs, stems, strict=True):
        # --format, else the input's kind: a book wants chapters (M4B), a text is a WAV
        default = "m4b" if Path(source).suffix.lower() in EPUB_SUFFIXES else "wav"
        fmt = format_for(Path("book"), settings.format, default=default)
        # a batch goes to -o or the current folder; one book to -o or beside its input
        home = output or (Path(".") if batch else Path(source).parent)
        if split:  # the playlist names the folder; the format never comes from -o
            if output is not None and not batch:
                if output.exists() and not output.is_dir():
                    raise InputError(f"with --split-chapters, -o is a folder; {output} is a file")
                folder = output
            else:
                folder = home / stem
            tasks.append(BookTask(source, folder / f"{stem}{PLAYLIST_SUFFIX}", fmt, split=True))
        elif output is not None and not batch and not output.is_dir():
            tasks.append(BookTask(source, output, format_for(output, settings.format, default)))
        else:
            tasks.append(BookTask(source, home / f"{stem}{EXTENSIONS[fmt]}", fmt))
    return tasks


def _run_one(synth: Synthesizer, task: BookTask, run: RunOptions, mode: ViewMode) -> RunResult:
    assert task.book is not None
    plan = synth.plan(task.book)
    result: RunResult | None = None
    # a split book's output is its playlist, a name nobody chose: the label is the book
    title = _book_label(task) if task.split else task.output.name
    with make_view(title, quiet=mode.quiet, json_mode=mode.json) as view:
        try:
            options = replace(run, fmt=task.fmt, split=task.split)
            for event in synth.run(plan, task.output, options):
                view.update(event)
                if event.result is not None:
                    result = event.result
        except (VoicekitError, KeyboardInterrupt) as exc:
            folder = run.job_dir or default_job_dir(task.output)
            said = "finished buckets are kept" in (getattr(exc, "hint", None) or "")
            if not said and not isinstance(exc, OutputError) and has_finished_work(folder):
                view.note(f"finished buckets are kept in {folder}; rerun to resume")
            raise
    assert result is not None
    return result


def _book_label(task: BookTask) -> str:
    """The book's title, else its input's name (``stdin`` for standard input)."""
    title = task.book.meta.title if task.book is not None else None
    if title and title.strip():
        return " ".join(title.split())
    return Path(task.source).stem if task.source != "-" else "stdin"


def _summary(result: RunResult, mode: ViewMode) -> None:
    if mode.json:
        out_console().print_json(json.dumps(result.to_dict()))
        return
    if mode.quiet:
        return
    if result.already_complete:
        tidied = "kept" if result.job_dir else "removed"
        err_console().print(
            Text.assemble(
                ("done", "green"),
                f" {result.output} was already complete (a run was stopped after writing "
                f"it); {tidied} its leftover job folder",
            )
        )
        return
    speed = f", {1 / result.rtf:.1f}x real time" if result.rtf else ""
    done = result.buckets_synthesized
    err_console().print(
        Text.assemble(
            ("wrote", "green"),
            f" {result.output}: {hms(result.audio_seconds)} of audio in "
            f"{hms(result.wall_seconds)}{speed}; {done} bucket{'s' if done != 1 else ''} "
            f"synthesized, {result.buckets_resumed} resumed"
            + (f", {result.buckets_repeated} repeated" if result.buckets_repeated else "")
            + f"; peak memory {result.peak_rss_mb:.0f} MB"
            + _loudness_note(result.loudness),
        )
    )


def _loudness_note(loudness: dict[str, float] | None) -> str:
    """"; loudness -20.1 LUFS (target -20), LRA 2.6 LU, true peak -4.0 dBTP" or ""."""
    if not loudness:
        return ""
    return (
        f"; loudness {loudness['integrated_lufs']:.1f} LUFS (target {loudness['target_lufs']:g}),"
        f" LRA {loudness['lra']:.1f} LU, true peak {loudness['true_peak_dbtp']:.1f} dBTP"
    )


def _run_batch(
    synth: Synthesizer, tasks: list[BookTask], run: RunOptions, mode: ViewMode
) -> None:
    rows: list[dict[str, Any]] = []
    for task in tasks:  # inputs that failed the up-front check are reported before any work
        if task.error is not None:
            print_error(f"{task.source}: {task.error.message}", task.error.hint)
    for task in tasks:
        row = task_row(task, run)
        if "status" not in row:
            try:
                result = _run_one(synth, task, run, mode)
                row.update(
                    status="done",
                    audio_seconds=result.audio_seconds,
                    wall_seconds=result.wall_seconds,
                    rtf=result.rtf,
                    resumed=result.buckets_resumed,
                )
            except VoicekitError as exc:  # one book failing does not stop the others
                row.update(status="failed", error=exc.message)
                print_error(f"{task.source}: {exc.message}", exc.hint)
            except Exception as exc:  # a bug met by one book must not cost the rest either
                if os.environ.get("VOICEKIT_DEBUG"):
                    raise
                row.update(status="failed", error=f"unexpected {type(exc).__name__}: {exc}")
                print_error(f"{task.source}: {row['error']}", "set VOICEKIT_DEBUG=1 for details")
        rows.append(row)
    failed = [r for r in rows if r["status"] == "failed"]
    if mode.json:
        out_console().print_json(json.dumps({"ok": not failed, "books": rows}))
    elif not mode.quiet:
        err_console().print(batch_table(rows, "voicekit batch"))
    if failed:
        raise typer.Exit(1)


def _dry_run(
    synth: Synthesizer, tasks: list[BookTask], json_out: bool, *, text: bool = False
) -> None:
    reports = []
    for task, plan in _plans(synth, tasks):
        if plan is None:
            error = task.error.message if task.error else ""
            reports.append({"input": task.source, "error": error})
            continue
        reports.append(_plan_report(synth, task, plan, text))
        if not json_out:
            for warning in plan.warnings:
                err_console().print(f"warning: {task.source}: {warning}", markup=False)
    if json_out:
        payload: Any = reports[0] if len(reports) == 1 else {"books": reports}
        out_console().print_json(json.dumps(payload))
    else:
        for report in reports:
            (_print_script if text else _print_plan)(report)
    if any("error" in r for r in reports):
        raise typer.Exit(1)


def _plans(synth: Synthesizer, tasks: list[BookTask]) -> list[tuple[BookTask, Plan | None]]:
    """Every book's plan, all made before any is shown; None for a book that has none."""
    plans: list[tuple[BookTask, Plan | None]] = []
    for task in tasks:
        plan = None
        if task.book is not None:
            try:
                plan = synth.plan(task.book)
            except VoicekitError as exc:  # one book's bad plan does not hide the others'
                if len(tasks) == 1:
                    raise
                task.error = exc
        plans.append((task, plan))
    return plans


def _plan_report(synth: Synthesizer, task: BookTask, plan: Plan, text: bool) -> dict[str, Any]:
    """What --dry-run says of one book (the --json object; the views print it)."""
    from voicekit.diagnostics.estimate import estimate_synthesis_seconds

    est_audio = plan.est_audio_seconds
    est_synth = estimate_synthesis_seconds(est_audio, synth.choice, synth.settings.threads)
    meta = plan.book.meta
    chapters: list[dict[str, Any]] = [
        {
            "index": c.index,
            "title": c.title,
            "words": c.words,
            "included": c.included,
            "kind": c.kind,
            "est_seconds": round(c.est_seconds(plan.length_scale), 1),
        }
        for c in plan.chapters
    ]
    if text:
        for chapter, sentences in zip(chapters, _script(plan), strict=True):
            chapter["sentences"] = sentences
    return {
        "input": task.source,
        "output": str(task.output),
        "format": task.fmt,
        "split_chapters": task.split,
        "title": meta.title,
        "authors": meta.authors,
        "language": meta.language,
        "cover": meta.cover_mime or None,
        "warnings": [*meta.warnings, *plan.warnings],
        "lexicon": plan.lexicon,
        "words": plan.book.words,
        "sentences": plan.sentences,
        "buckets": len(plan.buckets),
        "est_audio_seconds": round(est_audio, 1),
        "est_synthesis_seconds": None if est_synth is None else round(est_synth, 1),
        "device": synth.choice.device,
        "backend": synth.choice.backend,
        "chapters": chapters,
    }


def _print_plan(report: dict[str, Any]) -> None:
    console = out_console()
    if "error" in report:
        print_error(f"{report['input']}: {report['error']}")
        return
    authors = ", ".join(report["authors"]) or "unknown author"
    table = Table(title=Text(f"{report['title'] or report['input']} — {authors}"))
    table.add_column("#", justify="right")
    table.add_column("chapter")
    table.add_column("words", justify="right")
    table.add_column("read", justify="center")
    table.add_column("est. audio", justify="right")
    for c in report["chapters"]:
        read = "yes" if c["included"] else f"[dim]skip ({c['kind']})[/]"
        table.add_row(
            str(c["index"]),
            Text(c["title"]) if c["title"] else Text("(untitled)", "dim"),
            f"{c['words']:,}",
            read,
            hms(c["est_seconds"]) if c["included"] else "",
        )
    console.print(table)
    synth_est = report["est_synthesis_seconds"]
    details = [report["format"]]
    if report.get("split_chapters"):
        details.append("one file per chapter")
    if report["format"] == "wav":  # say so before hours of work: WAV carries none of it
        details.append("no chapters, tags or cover; --format m4b has them")
    elif report.get("cover"):
        details.append(f"cover {report['cover']}")
    console.print(
        f"{report['words']:,} words, {report['sentences']:,} sentences in "
        f"{report['buckets']:,} buckets -> {report['output']} ({', '.join(details)})\n"
        f"estimated audio {hms(report['est_audio_seconds'])}; synthesis on "
        f"{report['device']} ({report['backend']}): "
        + (hms(synth_est) if synth_est is not None else "no measured speed for this device"),
        markup=False,
    )


def _script(plan: Plan) -> list[list[list[str]]]:
    """Each chapter's sentences, by paragraph, as the voice is given them."""
    chapters: list[list[list[str]]] = [[] for _ in plan.chapters]
    last: tuple[int, int] | None = None
    for bucket in plan.buckets:
        paragraphs = chapters[bucket.chapter]
        if (bucket.chapter, bucket.paragraph) != last:
            paragraphs.append([])
            last = (bucket.chapter, bucket.paragraph)
        paragraphs[-1].extend(bucket.sentences)
    return chapters


def _print_script(report: dict[str, Any]) -> None:
    """The reading script: a heading per chapter, a sentence a line, paragraphs apart."""
    if "error" in report:
        print_error(f"{report['input']}: {report['error']}")
        return
    lines = [f"# {report['title'] or report['input']}", ""]
    for c in report["chapters"]:
        title = c["title"] or "(untitled)"
        if not c["included"]:
            lines += [f"## {c['index']}. {title} (skipped: {c['kind']})", ""]
            continue
        lines += [f"## {c['index']}. {title}", ""]
        for paragraph in c["sentences"]:
            lines += [*paragraph, ""]
    out_console().out("\n".join(lines), highlight=False)
