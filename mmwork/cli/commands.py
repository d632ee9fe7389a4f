"""What each ``mmwork`` command does: a thin call into the library, and its answer printed as a table,
key-value lines or JSON (``--json``).

>>> from mmwork.cli.commands import show
>>> show({"rows": 3}, as_json=True)
{
  "rows": 3
}
"""
from __future__ import annotations

import json
import sys

from mmwork.cli.params import PERSONALISE_GROUPS, parse_params, personalise_params
from mmwork.core.errors import MmworkError


def _is_frame(obj) -> bool:
    """A pandas DataFrame, known without importing pandas (``query`` and ``similar`` may not need it)."""
    return type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas")


def show(obj, as_json: bool) -> None:
    """Print a frame as a table (or records), a dict as aligned key-value lines (or an object)."""
    frame = _is_frame(obj)
    if as_json:
        payload = obj.to_dict(orient="records") if frame else obj
        print(json.dumps(payload, indent=2, default=str))
    elif frame:
        print(obj.to_string(index=False) if not obj.empty else "(none)")
    else:
        for key, value in obj.items():
            print(f"{key:>12}: {value}")


def data(args) -> None:
    from mmwork import datasets
    if args.action == "list":
        show(datasets.list_datasets(), args.json)
    elif args.action == "get":
        names = datasets.names() if args.name == "all" else [args.name]
        for name in names:
            show(datasets.get(name, source=args.source, force=args.force), args.json)
    elif args.action == "info":
        show(datasets.info(args.name), args.json)
    elif args.action == "import":
        show(datasets.import_catalogue(args.name, args.source, interactions=args.interactions,
                                         users=args.users), args.json)


def models(args) -> None:
    from mmwork.datasets import pretrained
    if args.action == "list":
        show(pretrained.list_models(), args.json)
    elif args.action == "get":
        for name in pretrained.names() if args.name == "all" else [args.name]:
            target = pretrained.get(name, force=args.force)
            show({"model": name, "folder": str(target), "file": pretrained.spec(name).main}, args.json)


def tables(args) -> None:
    from mmwork.store.tables import list_tables
    tables = list_tables()
    show(tables if args.json or args.schema else tables.drop(columns=["schema", "path"]), args.json)


def extract(args) -> None:
    from mmwork.features import extract
    summary = extract(args.dataset, args.modalities, scheduler=args.scheduler, workers=args.workers,
                      chunk_size=args.chunk_size, limit=args.limit, params=parse_params(args.param, what="MODALITY"),
                      refit=args.refit, strict=args.strict, progress=False if args.no_progress else None)
    show(summary, args.json)


def cluster(args) -> None:
    from mmwork.features import cluster
    if args.action == "start":
        info = cluster.start(workers=args.workers)
    elif args.action == "stop":
        info = cluster.stop()
    else:
        info = cluster.status()
    if args.json:
        show(info, True)
    elif info["running"]:
        print(f"running at {info['address']} (pid {info['pid']}, {info['workers']} worker(s), since {info['started']}; "
              f"log {info['log']}){'; ' + info['note'] if 'note' in info else ''}")
    else:
        print("not running" + (f" ({info['cleaned']})" if "cleaned" in info else ""))


def recommend(args) -> None:
    from mmwork.apps.experiments import run_experiment
    params = parse_params(args.param, what="MODEL")
    result = run_experiment(args.dataset, [m.strip() for m in args.models.split(",") if m.strip()],
                            protocol=args.protocol, k=args.k, seed=args.seed,
                            features=args.features.split(",") if args.features else None, params=params,
                            device=args.device, split_dir=args.split_dir, threshold=args.threshold, mask=args.mask,
                            verbose=not args.json)
    if args.output:
        result.to_json(args.output)
    if args.json:
        print(result.to_json())
        return
    setup = result.setup
    if args.split_dir:
        print(f"split: the files in {args.split_dir} (train {setup['train']} / valid {setup['valid']} / test "
              f"{setup['test']}); item catalogue: {setup['item_catalogue']}")
    else:
        print(f"split: {setup['protocol']} ({setup['description']}); {setup['params']}")
    print(f"mask: {setup['mask_rule']}\n{result!r}")


def query(args) -> None:
    from mmwork.search.queries import query
    result = query(args.dataset, args.table, columns=args.columns.split(",") if args.columns else None,
                   where=args.where, limit=args.limit, output=args.output, scheduler=args.scheduler)
    if args.output:
        print(f"{len(result):,} row(s) written to {args.output}")
    else:
        show(result, args.json)


def similar(args) -> None:
    from mmwork.search.similar import similar, similar_to_text
    if args.text:
        result = similar_to_text(args.dataset, " ".join(args.item_id), features=args.features, k=args.k,
                                 scheduler=args.scheduler, index=args.index)
    else:
        result = similar(args.dataset, args.item_id[0] if len(args.item_id) == 1 else args.item_id,
                         features=args.features, k=args.k, standardize=args.standardize, scheduler=args.scheduler,
                         index=args.index)
    show(result, args.json)


def index(args) -> None:
    from mmwork.search import index
    if args.action == "build":
        meta = index.build(args.dataset, args.features, standardize=args.standardize, kind=args.kind,
                           progress=False if args.json else None)
        show({k: meta[k] for k in ("name", "kind", "standardize", "rows", "fingerprint", "params", "built")},
               args.json)
    else:
        found = index.list_indexes()
        show(found if args.json else found.drop(columns="path"), args.json)


def report(args) -> None:
    from mmwork.apps import reports
    if args.action == "run":
        from mmwork.apps.report_index import headline_names
        params = reports.read_parameters(args.parameter, args.parameters_file)
        row = reports.run_report(args.notebook, params, progress=not args.no_progress, timeout=args.timeout)
        metrics = json.loads(row["metrics"] or "{}")
        shown = {name: metrics[name] for name in headline_names(metrics, json.loads(row.get("headline") or "[]"))}
        print(f"{row['notebook']} run {row['run_id']}: {row['status']} in {row['duration_s']} s; "
              f"headline metrics {json.dumps(shown)} ({len(metrics)} in all: `mmwork report list --json`)\n"
              f"  report: {reports.reports_dir() / row['html']}\n  index:  {reports.reports_dir() / 'index.html'}")
    elif args.action == "list":
        runs = reports.ledger()
        show(runs if args.json else runs[["run_id", "notebook", "status", "duration_s", "metrics"]], args.json)
    elif args.action == "compare":
        show(reports.compare(args.run_a, args.run_b), args.json)
    elif args.action == "index":
        print(reports.write_index())


def generate(args) -> None:
    from mmwork.apps import generate
    if args.action == "for-user":
        for_user(args)
        return
    if args.action == "list":
        show(generate.models(), args.json)
        return
    if not args.model:
        raise MmworkError(f"generate {args.action} needs --model; choose from {', '.join(generate.MODELS)}")
    generate.spec(args.dataset, args.model)
    if generate.DATASETS[args.dataset] == "multimodal":
        cross_modal(args)
        return
    if args.action == "train":
        params = model_params(args)
        model = generate.train(args.dataset, args.model, epochs=args.epochs, limit=args.limit, params=params,
                               device=args.device, seed=args.seed, resume=args.resume, progress=not args.json,
                               time_budget=args.time_budget)
        info = generate.model_dir(args.dataset, args.model)
        last = model.history_[-1]
        show({"model": args.model, "dataset": args.dataset, "saved": str(info), "epochs_run": len(model.history_),
                "best_epoch": model.best_epoch_, "device": str(model.device_)} |
               {k: round(v, 4) for k, v in last.items() if k == "loss" or k.startswith("valid_")} |
               {k: v for k, v in last.items() if k == "stopped"}, args.json)
    elif args.action == "sample":
        drawn = generate.sample(args.dataset, args.model, args.n, condition=args.condition, seed=args.seed,
                                device=args.device)
        out = args.out or ("samples" if drawn.sr else f"{args.model}-samples.png")
        paths = generate.save_samples(drawn, out)
        shown = str(paths[0]) if drawn.sr is None else f"{len(paths)} WAV files in {out}"
        show({"model": args.model, "samples": args.n, "condition": args.condition or "the classes in turn"
                if drawn.conditions else None, "written": shown}, args.json)
    elif args.action == "evaluate":
        report = generate.evaluate(args.dataset, args.model, n=args.n, seed=args.seed, device=args.device,
                                   k=args.k, effnet_samples=args.effnet_samples, progress=not args.json)
        print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else repr(report))


def model_params(args) -> dict:
    """``--param`` of ``generate train``: ``NAME=VALUE`` or ``MODEL.NAME=VALUE`` for the trained model."""
    pairs = [pair if "." in pair.partition("=")[0] else f"{args.model}.{pair}" for pair in args.param]
    return parse_params(pairs, groups=[args.model], what="MODEL").get(args.model, {})


def cross_modal(args) -> None:
    """``generate train|sample|evaluate`` for a multimodal data set (digits-av)."""
    from mmwork.apps.generate import cross_modal as cm, model_dir
    if args.action == "train":
        model = cm.train(args.dataset, args.model, epochs=args.epochs, limit=args.limit, params=model_params(args),
                         device=args.device, seed=args.seed, progress=not args.json, time_budget=args.time_budget)
        last = model.history_[-1]
        show({"model": args.model, "dataset": args.dataset, "fusion": model.config.fusion,
              "saved": str(model_dir(args.dataset, args.model)), "epochs_run": len(model.history_),
              "best_epoch": model.best_epoch_, "device": str(model.device_)}
             | {k: round(v, 4) for k, v in last.items() if k == "loss" or k.startswith("valid_")}, args.json)
    elif args.action == "sample":
        given = cm.parse_from(args.given)
        if not given:
            raise MmworkError("a multimodal model generates from given modalities: add --from, e.g. --from text=seven")
        targets = [t.strip() for t in args.to.split(",") if t.strip()] if args.to else None
        model = cm.load_model(args.dataset, device=args.device)  # loaded once for parsing, generating and writing
        targets = targets or [m for m in model.names if m not in given]
        out = cm.generate_from(args.dataset, given, targets, n=args.n, seed=args.seed, model=model)
        folder = cm.save_outputs(args.dataset, out, args.out or "cross-modal-samples", model=model,
                                 manifest={"given": given, "targets": targets, "n": args.n, "seed": args.seed})
        show({"model": args.model, "given": given, "generated": targets, "samples": args.n,
              "written": str(folder)}, args.json)
    elif args.action == "evaluate":
        report = cm.evaluate(args.dataset, args.model, n_joint=args.n_joint, seed=args.seed, device=args.device,
                             progress=not args.json)
        if args.json:
            print(json.dumps(report, indent=2, default=str))
        else:
            print(cm.summary(report))


def for_user(args) -> None:
    """Generate for one user with the personalised models (trained first when there are none)."""
    from mmwork.apps import personalise
    from mmwork.apps.personalise.profiles import check_request
    if args.with_speech and not args.out:
        raise MmworkError("--with-speech writes WAV files: add --out DIR")
    if args.lm and (args.evaluate or args.unguided or args.candidates is not None):
        raise MmworkError("--lm takes none of --evaluate, --unguided, --candidates (the language model's evaluation: "
                          "benchmarks/language_personalised.py)")
    candidates = args.candidates if args.candidates is not None else max(50, args.n)
    temperature = args.temperature if args.temperature is not None else 1.0
    check_request(args.n, candidates, temperature, args.top_p)
    params = personalise_params(parse_params(args.param, groups=PERSONALISE_GROUPS, what="GROUP"))
    personalise.check_user(args.dataset, args.user_id)
    if params and not args.retrain and personalise.trained(args.dataset):
        raise MmworkError(f"--param only applies when training; models for {args.dataset} exist: add --retrain")
    if args.retrain or not personalise.trained(args.dataset):
        why = "retraining" if personalise.trained(args.dataset) else \
            f"no personalised models for {args.dataset} yet; training them first"
        print(f"{why} (tokenizer, generator, guide, judge) into {personalise.model_dir(args.dataset)}", file=sys.stderr)
        personalise.train(args.dataset, device=args.device, progress=not args.json, **params)
    if args.lm:
        _language_for_user(args)
        return
    items = personalise.for_user(args.dataset, args.user_id, args.n, candidates=candidates, guided=not args.unguided,
                                 seed=args.seed, temperature=temperature, top_p=args.top_p, device=args.device)
    if args.out:
        _write_items(args, items, {"generator": "LSTM (personalised)", "guided": not args.unguided})
    evaluation = None
    if args.evaluate:
        evaluation = personalise.evaluate(args.dataset, args.users, n=args.n, candidates=candidates, seed=args.seed,
                                          temperature=temperature, top_p=args.top_p, device=args.device,
                                          progress=not args.json)
    if args.json:
        payload = {"dataset": args.dataset, "user_id": args.user_id, "guided": not args.unguided,
                   "label_names": personalise.load(args.dataset, args.device).content.vocabulary,
                   "items": items.to_dict(orient="records")}
        if evaluation is not None:
            payload["evaluation"] = evaluation
        print(json.dumps(payload, indent=2, default=str))
        return
    print(items[["rank", "text", "labels", "guide_score", "in_catalogue"]].to_string(index=False))
    if evaluation is not None:
        print(f"\n{evaluation['protocol']}")
        for judge in personalise.JUDGES:
            table = personalise.evaluation_table(evaluation, judge)
            print(f"\njudge: {judge}\n")
            print(table[[c for c in ("users", "items", "pr", "swap_pr", "diff", "diff_low", "diff_high", "lift",
                                     "lift_low", "lift_high", "diversity", "distinct_2", "copy_rate")
                         if c in table.columns]].round(3).to_string())


def _language_for_user(args) -> None:
    """``for-user --lm MODE``: the language model writes ``--n`` items (and a pitch each) for the user."""
    from mmwork.apps.personalise.language import language_items
    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_p", args.top_p)) if v is not None}
    writer = language_items(args.dataset, args.lm, device=args.device, fine_tune_budget=args.fine_tune_budget,
                            progress=not args.json, **sampling)
    items = writer.for_user(args.user_id, args.lm, args.n, seed=args.seed, pitch=True)
    if items.empty:
        raise MmworkError(f"the language model wrote no readable item for user {args.user_id} in {args.n * 2} samples "
                          f"(skips: {', '.join(sorted({s['reason'] for s in items.attrs['skips']}))}); try another "
                          f"--seed or --lm mode")
    if args.out:
        _write_items(args, items, {"generator": f"SmolLM2-135M-Instruct, {args.lm}", "prompt": items.attrs["prompt"],
                                   "prompt_note": items.attrs["note"], "skips": items.attrs["skips"]})
    if args.json:
        print(json.dumps({"dataset": args.dataset, "user_id": args.user_id, "mode": args.lm,
                          "items": items.to_dict(orient="records"), "note": items.attrs["note"],
                          "skips": items.attrs["skips"]}, indent=2, default=str))
        return
    if items.attrs["note"]:
        print(f"note: {items.attrs['note']}")
    for _, item in items.iterrows():
        print(f"{item['rank']}. {item['text']}" + (" (a catalogue text)" if item["in_catalogue"] else ""))
        print(f"   {item['pitch']}")


def _write_items(args, items, about: dict) -> None:
    from mmwork.apps.personalise.spoken import write_items
    folder = write_items(items, args.out, with_speech=args.with_speech, seed=args.seed,
                         manifest={"dataset": args.dataset, "user_id": str(args.user_id), "seed": args.seed} | about)
    print(f"written: {folder} ({len(items)} items{', with speech' if args.with_speech else ''}; manifest.json)",
          file=sys.stderr)


def demo(args) -> None:
    from mmwork.apps.demo import run_demo
    run_demo()
