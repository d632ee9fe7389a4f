"""Personalised content: generate item texts for a user, and check with a recommender that they fit.

The loop, on any data set with interactions, an items text column and item features:

1. **Split** the interactions per user at random 8:1:1 (``mmwork.evaluation.recbole_split``).
2. **Content** f(i) of an item is the features the recommenders read (``load_item_features``,
   default MiniLM text vector + genre multi-hot). A *generated* text gets its content the same way:
   its text through the extractor that built the feature column (MiniLM for ``text:minilm``; the
   saved TF-IDF/LSA or skip-gram fit for the others) and its labels parsed from its "Genres: ..."
   part (``label_column``). A user's **profile** is the mean content of their training items.
3. **Generator**: an RNN language model over a tokenizer fitted on the catalogue's texts, conditioned
   on the profile; trained on (profile of u without i, text of i) over the training interactions,
   early-stopped on the validation interactions.
4. **Guide** (steers generation): a content-based recommender on the training split; ``for_user``
   samples many texts and keeps those it scores highest. **Judges** (evaluate), on the same training
   split, so the user's held-out items are unseen by all three; the generator never sees them: a
   multimodal hybrid (another model family, its own seed, the guide's features) and a text-factor
   model (``TextFactors``: PureSVD factors predicted from another text representation, by default
   TF-IDF/LSA, so it reads none of the guide's features).
5. **One scorer per judge.** The choice: every item, catalogue or generated, is scored from its
   content through the judge's content path (``score_items``, the path a brand-new item takes; the
   hybrid's item embeddings and biases are not used), and a generated text equal to a catalogue text
   is that item, with its score and rank.

``train`` fits and saves all of it under ``data/models/personal/<dataset>/``; ``for_user`` generates;
``evaluate`` measures, over many users and generator seeds, each judge's percentile rank of each
user's items for the user and in the swap test (difference and lift), against unguided samples,
random real items, the user's held-out items, the guide's own top-k and a placebo (see
``mmwork.evaluation.personalisation``).

>>> from mmwork.apps import personalise
>>> personalise.train("movielens-100k")                                   # doctest: +SKIP
>>> personalise.for_user("movielens-100k", "196", n=5)                    # doctest: +SKIP
>>> personalise.evaluate("movielens-100k", n_users=200)["table"]          # doctest: +SKIP

One job per module: ``config`` (:class:`PersonaliseConfig` and its models' typed parameters),
``content`` (:class:`ItemContent`: f(i) of catalogue items and new texts), ``profiles`` (profiles,
training pairs, label parsing, sampling for a profile), ``personaliser`` (:class:`Personaliser`,
:func:`load`, :func:`for_user`), ``training`` (:func:`train`) and ``evaluation`` (:func:`evaluate`,
:func:`evaluation_table`).
"""
from mmwork.apps.personalise.config import (LM_DEFAULTS, SECOND_JUDGE_TEXT, GuideParams, JudgeParams,
                                            LanguageModelParams, PersonaliseConfig, TextJudgeParams)
from mmwork.apps.personalise.content import ItemContent
from mmwork.apps.personalise.evaluation import CONDITIONS, JUDGES, PROTOCOL, evaluate, evaluation_table
from mmwork.apps.personalise.personaliser import (Personaliser, check_user, for_user, load, model_dir, trained,
                                                  unload)
from mmwork.apps.personalise.training import VALID_PAIRS, train

__all__ = ["CONDITIONS", "JUDGES", "LM_DEFAULTS", "PROTOCOL", "SECOND_JUDGE_TEXT", "VALID_PAIRS", "GuideParams",
           "ItemContent", "JudgeParams", "LanguageModelParams", "PersonaliseConfig", "Personaliser", "TextJudgeParams",
           "check_user", "evaluate", "evaluation_table", "for_user", "load", "model_dir", "train", "trained", "unload"]
