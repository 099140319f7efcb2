"""`imhard review …`: the manual review of mining candidates (store, page, exchange)."""

from __future__ import annotations

import getpass

import click

from .common import home_option
from .group import main


def _store(home):
    from ..review import ReviewStore

    return ReviewStore(home)


def _default_reviewer() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@main.group()
def review():
    """Review mining candidates: keep or remove each, with a reason (README: Review).

    Decisions live in <home>/review.duckdb as an append-only event log. While
    `imhard review serve` runs it owns that file; use its page or JSON API then.

    \b
    Example:
      imhard review import --run efficientnet-lite0__sample
      imhard review serve
    """


@review.command("import")
@click.option("--run", required=True,
              help="Mining run: a name under <home>/mining (see `imhard mine`) or a run folder.")
@home_option
def import_(run, home):
    """Add a mining run's candidates to the review store (re-importing changes nothing).

    \b
    Example:
      imhard review import --run efficientnet-lite0__sample
    """
    from ..mining import open_run

    handle = open_run(run, home)  # a wrong name is told before the store is created
    with _store(home) as store:
        res = store.import_run(handle)
    parts = ", ".join(f"{n} from {s}" for s, n in res.by_source.items())
    click.echo(f"{res.run}: {res.candidates} candidates under review ({parts})")


@review.command("import-label-errors")
@click.option("--version", default=None, metavar="X.Y.Z",
              help="Use the board's verified results scored on this dataset version.")
@click.option("--board", default="leaderboard", show_default=True,
              type=click.Path(file_okay=False), help="Board folder (its results/).")
@click.option("--predictions", default=None, type=click.Path(dir_okay=False),
              help="Or a predictions table: parquet with id, model, top_k, top_k_prob.")
@click.option("--min-models", type=click.IntRange(min=1), default=2, show_default=True,
              help="Models that must agree on the same class outside the label set.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Floor under each model's per-class threshold.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Use only models at least this accurate on these images (strong models).")
@click.option("--limit", type=click.IntRange(min=0), default=10, show_default=True,
              help="Candidates to print.")
@home_option
def import_label_errors(version, board, predictions, min_models, min_confidence, min_accuracy,
                        limit, home):
    """Queue images whose label models confidently disagree with (confident learning).

    From the per-image predictions of a board's verified results on one dataset version (or a
    predictions table), flag images under review where at least --min-models models each say a
    class outside the label set with a probability above their per-class threshold (the
    mean probability they give that class on images labelled with it). The queue keeps the
    evidence; answer with `imhard review relabel` or `imhard review decide`.

    \b
    Example:
      imhard review import-label-errors --version 1.0.0 --min-models 1
    """
    from ..analysis.label_errors import queue_label_errors

    if (predictions is None) == (version is None):
        raise click.UsageError("give either --version or --predictions")
    res = queue_label_errors(home, board=board, version=version, predictions=predictions,
                             min_models=min_models, min_confidence=min_confidence,
                             min_accuracy=min_accuracy)
    s = res.search
    click.echo(f"{len(s.candidates)} label-error candidates among {s.images} images "
               f"({len(s.models)} models{', dropped ' + ', '.join(s.dropped_models) if s.dropped_models else ''}); "
               f"{res.queued} queued as {res.batch!r}, {res.not_under_review} not under review")
    _print_label_errors([vars(c) | {"score": c.score} for c in s.candidates[:limit]])


def _print_label_errors(rows) -> None:
    from .. import labels

    names = labels.english_labels(range(labels.NUM_CLASSES))
    for r in rows:
        evidence = ", ".join(f"{m} {p:.2f}" for m, p in zip(r["models"], r["confidences"],
                                                              strict=True))
        answered = f" [{r['answered']}]" if r.get("answered") else ""
        click.echo(f"  {r['id']}: labelled {', '.join(names[i] for i in r['label'])}; models say "
                   f"{names[r['suggested']]} ({r['suggested']}): {evidence}{answered}")


@review.command("label-errors")
@click.option("--pending", is_flag=True, help="Only those no relabel or decision answered yet.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True)
@home_option
def label_errors(pending, limit, home):
    """The label-error queue, most confident first, with its evidence.

    \b
    Example:
      imhard review label-errors --pending
    """
    with _store(home) as store:
        rows = store.label_errors(pending_only=pending, limit=limit)
    _print_label_errors(rows)
    if not rows:
        click.echo("no label-error candidates queued")


@review.command()
@click.option("--origin", default=None, help="Only this origin (e.g. objectnet).")
@home_option
def status(origin, home):
    """Counts by verdict, by origin and by removal reason.

    \b
    Example:
      imhard review status
      imhard review status --origin objectnet
    """
    from ..review import format_status

    with _store(home) as store:
        click.echo(format_status(store.status(origin=origin)))


@review.command("list")
@click.option("--verdict", type=click.Choice(["pending", "keep", "remove", "all"]),
              default="all", show_default=True)
@click.option("--origin", default=None, help="Only this origin.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True)
@home_option
def list_(verdict, origin, limit, home):
    """List candidates with their labels, the judge's top guess and the current verdict.

    \b
    Example:
      imhard review list --verdict pending --limit 5
    """
    from ..review import format_candidate

    with _store(home) as store:
        rows = store.candidates(verdict=verdict, origin=origin, limit=limit)
    for row in rows:
        click.echo(format_candidate(row))
    if not rows:
        click.echo("no candidates match")


@review.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--verdict", required=True, type=click.Choice(["keep", "remove"]))
@click.option("--reason", default=None,
              help="For remove: ill-posed, wrong-label, duplicate or other.")
@click.option("--tags", default=None, metavar="T1,T2",
              help="Comma-separated: lack-of-information, rare-case, illusion, many-objects.")
@click.option("--note", default=None, help="Free text kept with the decision.")
@click.option("--reviewer", default=_default_reviewer, envvar="IMHARD_REVIEWER",
              show_default="your login name", help="Who decided.")
@home_option
def decide(ids, verdict, reason, tags, note, reviewer, home):
    """Record a decision for one or more candidate ids (all or none).

    \b
    Example:
      imhard review decide sample/n02389026/horse.png --verdict keep --tags rare-case
      imhard review decide sample/n02389026/horse.png --verdict remove --reason ill-posed --note "a silhouette"
    """
    with _store(home) as store:
        events = store.decide(ids, verdict, reason=reason, tags=tags, note=note,
                              reviewer=reviewer)
    for ev in events:
        extra = f" ({ev['reason']})" if ev["reason"] else ""
        click.echo(f"{ev['verdict']}{extra}: {ev['id']}")


@review.command()
@click.argument("image_id", metavar="ID")
@click.option("--label", "label", multiple=True, required=True, metavar="CLASS",
              help="New label: a class index 0..999 or name; repeat (or comma-separate) for a "
                   "label set. Replaces the whole list.")
@click.option("--reason", required=True, help="Why the label changes (published in the changes).")
@click.option("--note", default=None, help="Free text kept with the event.")
@click.option("--reviewer", default=_default_reviewer, envvar="IMHARD_REVIEWER",
              show_default="your login name", help="Who relabelled.")
@home_option
def relabel(image_id, label, reason, note, reviewer, home):
    """Change a candidate's label list; the next published version lists the change.

    An event in the review log like a decision: `imhard review undo` cancels it.

    \b
    Example:
      imhard review relabel sample/n02389026/horse.png --label 339 --label "horse-drawn vehicle" --reason "a cart is in view"
    """
    from ..labels import english_labels, parse_labels

    new = parse_labels(label)
    with _store(home) as store:
        ev = store.relabel(image_id, new, reason, note=note, reviewer=reviewer)
    names = ", ".join(english_labels(ev["label"]))
    click.echo(f"relabelled {ev['id']} → {list(ev['label'])} ({names}) (#{ev['seq']})")


@review.command()
@click.argument("image_id", metavar="[ID]", required=False)
@click.option("--reviewer", default=None, help="Undo this reviewer's latest decision.")
@home_option
def undo(image_id, reviewer, home):
    """Cancel the latest decision (of ID, or of anyone); history keeps both events.

    \b
    Example:
      imhard review undo
      imhard review undo sample/n02389026/horse.png
    """
    with _store(home) as store:
        res = store.undo(id=image_id, reviewer=reviewer)
    if res is None:
        raise click.ClickException("nothing to undo")
    cand = res["candidate"]
    click.echo(f"undid {res['undone']['verdict']} of {cand['id']}; now {cand['verdict']}")


@review.command()
@click.argument("image_id", metavar="[ID]", required=False)
@home_option
def history(image_id, home):
    """Every event of the log (decisions, relabels and undos), oldest first.

    \b
    Example:
      imhard review history sample/n02389026/horse.png
    """
    from ..review.vocab import UNDO

    with _store(home) as store:
        events = store.history(image_id)
    for ev in events:
        what = f"undo of #{ev['undoes']}" if ev["verdict"] == UNDO else ev["verdict"]
        if ev.get("label") is not None:
            what = f"relabel → {','.join(str(x) for x in ev['label'])}"
        extra = "".join(f" {k}={ev[k]}" for k in ("reason", "note") if ev[k])
        tags = f" tags={','.join(ev['tags'])}" if ev["tags"] else ""
        click.echo(f"#{ev['seq']:<6} {ev['at']} {ev['reviewer'] or '-':<12} {what:<12} "
                   f"{ev['id']}{extra}{tags}")


@review.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Parquet file to write (DECISION_SCHEMA).")
@click.option("--history", "full", is_flag=True,
              help="Every uncancelled decision, not only the current one per image.")
@home_option
def export(out, full, home):
    """Write decisions as parquet; `imhard review apply` reads it in another store.

    \b
    Example:
      imhard review export --out decisions.parquet
    """
    with _store(home) as store:
        path, n = store.export(out, history=full)
    click.echo(f"{n} decisions → {path}")


@review.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@home_option
def apply(file, home):
    """Add the decisions of an exported file (made elsewhere); re-applying adds nothing.

    \b
    Example:
      imhard review apply colleague-decisions.parquet
    """
    with _store(home) as store:
        res = store.apply(file)
    click.echo(f"{res.added} decisions added, {res.skipped} already present")


@review.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address or name to listen on; requests must name it (or a loopback name) "
                   "as Host. Other than loopback, anyone reaching it can decide.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port (0 picks a free one).")
@click.option("--verbose", is_flag=True, help="Log every request.")
@home_option
def serve(host, port, verbose, home):
    """Serve the review page and its JSON API until Ctrl-C.

    Keys on the page: k keep, x remove, 1-4 remove with a reason, l/r/i/m tags,
    u undo; `?` shows them all.

    \b
    Example:
      imhard review serve --port 8765    # then open http://127.0.0.1:8765/
    """
    from ..review import serve as run

    run(home, host=host, port=port, verbose=verbose, echo=click.echo)
