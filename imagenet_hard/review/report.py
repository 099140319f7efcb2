"""Plain-text summaries of the review store, as ``imhard review status`` and the demo print them."""

from __future__ import annotations


def format_status(st: dict) -> str:
    """The counts of :meth:`ReviewStore.status` as a few aligned lines."""
    runs = ", ".join(f"{r['run']} (judge {r['judge'] or '?'})" for r in st["runs"]) or "none"
    share = f"{100 * st['decided'] / st['total']:.1f}%" if st["total"] else "-"
    lines = [f"{st['total']} candidates, {st['decided']} decided ({share}), "
             f"{st['events']} events; runs: {runs}",
             f"  pending {st['pending']}   keep {st['keep']}   remove {st['remove']}"]
    if st["by_origin"]:
        lines.append("by origin:")
        lines += [f"  {name:<28} {c['total']:>7} total {c['pending']:>7} pending "
                  f"{c['keep']:>7} keep {c['remove']:>7} remove"
                  for name, c in st["by_origin"].items()]
    if st["by_reason"]:
        lines.append("removed, by reason:")
        lines += [f"  {name:<28} {n:>7}"
                  for name, n in sorted(st["by_reason"].items(), key=lambda kv: -kv[1])]
    if st["by_tag"]:
        lines.append("tags: " + ", ".join(f"{t} {n}" for t, n in sorted(st["by_tag"].items())))
    return "\n".join(lines)


def format_candidate(row: dict) -> str:
    """Two lines per candidate: verdict and id; labels, the judge's top guess, origin."""
    verdict = row["verdict"] + (f" ({row['reason']})" if row["reason"] else "")
    label = ", ".join(row["english_label"])
    if row.get("relabel"):
        from ..labels import english_labels

        label += f" → relabelled {', '.join(english_labels(row['relabel']))}"
    return (f"{verdict:<22} {row['id']}\n"
            f"{'':<22} label: {label}; judge: "
            f"{row['top5_names'][0]} {row['top5_prob'][0]:.0%}; origin {row['origin']}")
