"""Regression guard for a redesign that must move no result: capture the figures of one checkout, then
compare two captures.

    # a checkout of the commit before (git worktree add /tmp/before COMMIT) and one after
    python benchmarks/regression_guard.py capture /tmp/before /tmp/guard/before
    python benchmarks/regression_guard.py capture .           /tmp/guard/after
    python benchmarks/regression_guard.py compare /tmp/guard/before /tmp/guard/after --out results/guard.json

``capture`` runs, with the mmwork source of SRC and a fresh data root under OUT: ``mmwork demo`` (its
generator and personalisation tables at their seeds), ``mmwork recommend evaluate`` of every model
under the RecBole protocol, and ``mmwork similar`` for a set of items over text, image and audio
features. ``compare`` checks every stored table (data bit for bit, provenance metadata less its
times), the recommender figures (less timings), the k-NN answers, and the demo's printed figures
(timings and paths masked).
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

MODELS = "pop,itemknn,userknn,ease,bpr,multvae,content,hybrid"
SIMILAR = [  # (name, argv after `mmwork similar`)
    ("text-tfidf", ["movielens-100k", "1", "50", "--features", "text:tfidf_lsa", "--k", "10"]),
    ("text-skipgram", ["movielens-100k", "50", "--features", "text:skipgram", "--k", "10"]),
    ("audio-z", ["speech-prompts", "digits/7", "--features", "audio:mfcc_stats", "--k", "10"]),
    ("audio-raw", ["speech-prompts", "digits/7", "--features", "audio:mfcc_stats", "--k", "10", "--no-standardize"]),
    ("audio-logmel", ["instrument-samples", "ambi_choir", "--features", "audio:logmel_stats", "--k", "5"]),
    ("image-cnn", ["fashion-mnist", "train-00000", "train-00002", "--features", "image:cnn_effnet_lite0", "--k", "10"]),
]
TIMING_KEYS = ("_s", "second", "time", "machine", "created")


def _mmwork(src: Path, out: Path, args: list[str], stdout: Path) -> int:
    env = os.environ | {"PYTHONPATH": str(src), "MMWORK_DATA": str(out / "data"), "HF_HUB_OFFLINE": "1"}
    with open(stdout, "w") as handle, open(stdout.with_suffix(".err"), "w") as errors:
        # cwd=src: its notebooks/ and reports/ are the ones used
        return subprocess.run([sys.executable, "-m", "mmwork", *args], cwd=src, env=env, stdout=handle,
                              stderr=errors).returncode


def capture(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if _mmwork(src, out, ["demo"], out / "demo.txt"):
        raise SystemExit(f"mmwork demo failed; see {out / 'demo.txt'}")
    _mmwork(src, out, ["recommend", "evaluate", "--dataset", "movielens-100k", "--models", MODELS,
                       "--protocol", "recbole", "--json"], out / "recommend.json")
    for name, argv in SIMILAR:
        _mmwork(src, out, ["similar", *argv, "--json"], out / f"similar-{name}.json")


def _tables(root: Path) -> dict[Path, Path]:
    folder = root / "data" / "processed"
    return {p.relative_to(folder): p for p in folder.rglob("*.parquet") if not p.name.startswith(".")}


def _rooted(table, root: Path):
    """String columns with the capture's data root cut out (raw file paths differ only by it)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    prefix = str(root.resolve() / "data")
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            table = table.set_column(i, field, pc.replace_substring(table.column(i), prefix, "DATA"))
    return table


def _provenance(table) -> dict:
    meta = json.loads((table.schema.metadata or {}).get(b"mmwork", b"{}"))
    meta.pop("created", None)
    return meta


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not any(t in k for t in TIMING_KEYS)}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def compare(a: Path, b: Path) -> dict:
    import pyarrow.parquet as pq
    report: dict = {"tables": {}, "differs": []}
    ta, tb = _tables(a), _tables(b)
    for rel in sorted(set(ta) | set(tb)):
        if rel not in ta or rel not in tb:
            report["differs"].append(f"table {rel} only in one capture")
            continue
        raw_x, raw_y = pq.read_table(ta[rel]), pq.read_table(tb[rel])
        x, y = _rooted(raw_x, a), _rooted(raw_y, b)
        same = x.replace_schema_metadata(None).equals(y.replace_schema_metadata(None))
        changed = [c for c in x.column_names if c in y.column_names and not x[c].equals(y[c])]
        report["tables"][str(rel)] = "identical" if same and _provenance(raw_x) == _provenance(raw_y) else \
            f"columns differ: {changed}" if not same else "provenance differs"
    recommend = [json.loads((root / "recommend.json").read_text()) for root in (a, b)]
    report["recommenders"] = "identical" if _untimed(recommend[0]["results"]) == _untimed(recommend[1]["results"]) \
        else "DIFFER"
    report["similar"] = {name: "identical" if (a / f"similar-{name}.json").read_text() ==
                         (b / f"similar-{name}.json").read_text() else "DIFFER" for name, _ in SIMILAR}
    mask = lambda s: re.sub(r"\s+", " ", re.sub(r"\d+(\.\d+)? ?s\b|\d{8}-\d{6}-[0-9a-f]{6}|"  # noqa: E731
                                                 r"\d{4}-\d\d-\d\dT[\d:+]+|(?<![\w/])/\S+/", "#", s)).strip()
    demo = [[mask(line) for line in (root / "demo.txt").read_text().splitlines() if not line.startswith("[")]
            for root in (a, b)]  # "[...]" lines: a notebook kernel's own log, not the demo's output
    report["demo_lines_differing"] = [line for line in difflib.unified_diff(*demo, lineterm="", n=0)
                                      if not line.startswith(("---", "+++", "@@"))]
    report["differs"] += [f"table {t}: {v}" for t, v in report["tables"].items() if v != "identical"]
    report["differs"] += [] if report["recommenders"] == "identical" else ["recommender figures"]
    report["differs"] += [f"similar {n}" for n, v in report["similar"].items() if v != "identical"]
    report["differs"] += report["demo_lines_differing"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("capture")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.action == "capture":
        capture(args.src.resolve(), args.out.resolve())
        return
    report = compare(args.before, args.after)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text if report["differs"] else f"no figure moved ({len(report['tables'])} tables, recommenders, "
          f"{len(SIMILAR)} k-NN answers, the demo's tables)")
    sys.exit(1 if report["differs"] else 0)


if __name__ == "__main__":
    main()
